"""A custom user model with Django's AbstractUser columns and one of its own (table ``accounts_user``)."""
from django.contrib.auth.models import AbstractUser
from django.db import models


class User(AbstractUser):
    nickname = models.CharField(max_length=40, blank=True, default="")
