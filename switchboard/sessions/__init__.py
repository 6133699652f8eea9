"""Scheduled policy Q&A sessions (docs/sessions.md): a ConfBridge conference callers join from the
hotline menu, muted, with a moderator (an expert agent) who gives the floor one caller at a time."""
