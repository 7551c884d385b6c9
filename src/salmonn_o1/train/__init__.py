"""Training: recipes, the shared engine (`Trainer` + `Objective`), SFT."""
