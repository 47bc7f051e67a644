"""Scripts that reproduce the notebook's experiments; run each as ``python -m experiments.<name>``."""
