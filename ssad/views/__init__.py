"""The training views: DINO-style multi-crop augmentation, colour jitter and the negative transforms."""
