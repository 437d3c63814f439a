"""Network definitions: timm backbones, the classifier, the YOLO detector (architecture schema), the embedder and
the output wrappers every runtime shares."""
