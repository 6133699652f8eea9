"""Prompt audio: number grammar (pure) and the prompt builder (espeak-ng + pydub)."""
