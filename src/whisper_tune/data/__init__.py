"""Manifests (the seed's JSONL format), datasets, augmentation and corpus preparation."""
