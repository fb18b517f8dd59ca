"""Frame-to-frame coherence: warm starts and the temporal consistency term (Ruder et al.)."""
