from django.urls import path

from accounts.rest import views

urlpatterns = [
    path("signin", views.SigninView.as_view(), name="api-signin"),
    path("user/initialize", views.UserInitializeView.as_view(), name="api-user-initialize"),
    path("user/", views.UserView.as_view(), name="api-user"),
]
