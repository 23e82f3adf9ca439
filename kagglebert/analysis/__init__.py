"""Tools over finished runs: `blend` (OOF-weighted rank blends) and `ablate` (FiT vs ITPT-FiT,
paired over folds and seeds). They call the stages; no stage imports them."""
