"""Scoring ASR the Open ASR leaderboard way: Whisper's English normaliser, corpus WER/CER, RTFx."""
