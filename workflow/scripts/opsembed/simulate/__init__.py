"""The simulated demo screen: a small pooled CRISPR screen imaged in four channels.

Modules: ``complexes`` (the real gene library and its complex phenotypes), ``design``
(plates, wells, tiles and the sparse plate x gene design; cheap, used at parse time),
``phenotypes`` (per-cell generating factors), ``batch`` (per-plate batch effects),
``render`` (cells to uint16 camera images) and ``screen`` (writes the whole screen).
"""
