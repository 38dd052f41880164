"""Data, training, export and evaluation of the mask classifier (needs torch; not used at run time)."""
