"""Synthetic brand-logo data: the simple-icons catalogue rendered and composited onto photos.

A leaf of the library: only the dataset tools, benchmarks and tests import it; training and inference never do
(they read the folders it writes). One module per job::

    catalog        simple-icons brands, their licences, the seeded disjoint train/val/test brand split
    render         SVG -> tight RGBA (resvg), logo colour styles, canonical gallery renders
    composite      logos pasted onto photos with exact boxes, occlusion and degradation; "wild" logo crops
    yolo           the YOLO logo-detection dataset writer
    brand_dataset  the brand metric-learning dataset writer (train / gallery / query folders)
    record         what a written dataset records about itself (brands.json, package versions, skipped inputs)
"""
