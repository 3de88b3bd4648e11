"""factory-boy factories for the registry's models."""

import factory

from accounts import services as account_services
from accounts.models import Namespace
from registry.models import Repository


class UserFactory(factory.Factory):
    """Users go through the service so each gets its namespace, as in production."""

    class Meta:
        model = dict

    username = factory.Sequence(lambda n: f"user{n}")
    password = "password-123"

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        return account_services.user_create(username=kwargs["username"], password=kwargs["password"])

    _build = _create


class OrganizationFactory(factory.Factory):
    class Meta:
        model = dict

    name = factory.Sequence(lambda n: f"org{n}")
    creator = factory.SubFactory(UserFactory)

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        return account_services.organization_create(name=kwargs["name"], creator=kwargs["creator"])

    _build = _create


class RepositoryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Repository

    namespace = factory.LazyAttribute(lambda o: Namespace.objects.get(name="alice"))
    name = factory.Sequence(lambda n: f"repo{n}")
    visibility = Repository.Visibility.PRIVATE
    kind = Repository.Kind.IMAGE
