"""Pixel normalisation of the lip ROIs: ``(x / 255 - ROI_MEAN) / ROI_STD``.

Its own light module because two places need it: the preprocessor applies it and the
missing-video fills (``black``) must know what a 0-intensity frame becomes.
"""

ROI_MEAN = 0.421
ROI_STD = 0.165
