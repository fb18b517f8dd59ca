"""Reading and writing media. The only home of OpenCV image codecs and (later) PyAV."""

from .image import read_image, write_image

__all__ = ["read_image", "write_image"]
