"""The engine: recipes, executors and the optimizer class that runs them."""
