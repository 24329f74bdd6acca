"""A Django settings module as a project would write it (tests/test_django.py loads it)."""

SECRET_KEY = "test-only-not-secret"
EMAIL_BACKEND = "gocomm.contrib.django.EmailBackend"
DEFAULT_FROM_EMAIL = "Shop Ünïcode <shop@example.com>"
DEFAULT_CHARSET = "utf-8"
USE_TZ = True
# GOCOMM is set per test (override_settings) to point at the test's SMTP server.
