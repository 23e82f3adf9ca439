"""Helpers for the notebooks: `profiles` (one word → a config), `report` (run files → tables) and
`plots` (tables → figures). Notebook cells call these and the stages; nothing imports this package."""
