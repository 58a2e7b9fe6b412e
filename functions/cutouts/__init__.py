"""Cutouts: S3 upload -> Bria RMBG 2.0 gateway -> transparent PNG in S3."""
