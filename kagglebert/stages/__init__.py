"""The pipeline's stages, one module each with `main(cfg)`: eda → lm (ITPT) → train (k-fold;
`baselines` holds the tfidf/features model kinds of the same stage) → submit. Stages import the
core and each other in that order only."""
