"""Pure loss functions of STROTSS (no state, no I/O)."""

from .content import content_loss, self_similarity
from .style import moment_loss, moments, relaxed_emd, remd_cosine, remd_palette
from .total import LossTerms, StyleTarget, alpha_at, combine, strotss_loss

__all__ = ["content_loss", "self_similarity", "moment_loss", "moments", "relaxed_emd",
           "remd_cosine", "remd_palette", "LossTerms", "StyleTarget", "alpha_at", "combine",
           "strotss_loss"]
