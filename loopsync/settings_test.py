"""The test suite's settings (pyproject.toml's DJANGO_SETTINGS_MODULE): the app's own, with development's DEBUG
default, so a bare `pytest` runs, and a fast password hasher. Every test user's password is hashed at
least once, and PBKDF2's 1,000,000 rounds took half the suite's time on SQLite. Production's hasher is
tested on its own (tests/test_project.py runs the real settings in a subprocess)."""

import os

os.environ.setdefault("DEBUG", "true")

from .settings import *  # noqa: E402, F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # noqa: S105 - tests only
