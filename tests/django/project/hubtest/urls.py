"""No pages: the tests drive the project through manage.py commands."""
urlpatterns = []
