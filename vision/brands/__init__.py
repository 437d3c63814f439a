"""Brand recognition: the pipeline from a detected logo to a brand name, in one package.

- :mod:`vision.brands.gallery`: ``BrandGallery``, the reference embeddings of known brands, its open-set
  calibration and its self-checking ``.npz`` file;
- :mod:`vision.brands.detection_rule`: the calibrated decision on detector confidence and open-set score together;
- :mod:`vision.brands.verification`: the logo verifier that rescores the detector's boxes;
- :mod:`vision.brands.ocr`: reading the brand name on a logo and matching it to the gallery's brands;
- :mod:`vision.brands.recognition`: ``BrandRecognizer``, detector -> verifier -> crops -> embedder -> gallery.

Importing this package loads none of them (``vision.BrandGallery`` and ``vision.BrandRecognizer`` resolve lazily).
"""

# the shipped pipeline, the defaults of vision recognize and vision serve --recognizer: its gallery was built with
# its embedder and calibrated with its detector
DEFAULT_EMBEDDER, DEFAULT_GALLERY, DEFAULT_DETECTOR = "brand_ensemble", "simple_icons_gallery", "logo_yolo11n"
