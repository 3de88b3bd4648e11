from django.urls import path

from accounts.rest import applications, organizations, robots, superuser, teams, tokens, views

ORG = "organization/<str:orgname>"
ROBOT = "robots/<str:robot_shortname>"

urlpatterns = [
    path("signin", views.SigninView.as_view(), name="api-signin"),
    path("signout", views.SignoutView.as_view(), name="api-signout"),
    path("user/initialize", views.UserInitializeView.as_view(), name="api-user-initialize"),
    path("user/", views.UserView.as_view(), name="api-user"),
    path("entities/<str:prefix>", views.EntitySearchView.as_view(), name="api-entities"),
    # Organizations and members
    path("organization/", organizations.OrganizationListView.as_view(), name="api-organization-list"),
    path(ORG, organizations.OrganizationView.as_view(), name="api-organization"),
    path(f"{ORG}/members", organizations.OrganizationMembersView.as_view(), name="api-organization-members"),
    path(
        f"{ORG}/members/<str:membername>",
        organizations.OrganizationMemberView.as_view(),
        name="api-organization-member",
    ),
    # Teams
    path(f"{ORG}/team/<str:teamname>", teams.TeamView.as_view(), name="api-team"),
    path(f"{ORG}/team/<str:teamname>/members", teams.TeamMembersView.as_view(), name="api-team-members"),
    path(
        f"{ORG}/team/<str:teamname>/members/<str:membername>",
        teams.TeamMemberView.as_view(),
        name="api-team-member",
    ),
    path(f"{ORG}/team/<str:teamname>/permissions", teams.TeamPermissionsView.as_view(), name="api-team-permissions"),
    # Robots of the signed-in user and of organizations
    path("user/robots", robots.UserRobotListView.as_view(), name="api-user-robots"),
    path(f"user/{ROBOT}", robots.UserRobotView.as_view(), name="api-user-robot"),
    path(f"user/{ROBOT}/regenerate", robots.UserRobotRegenerateView.as_view(), name="api-user-robot-regenerate"),
    path(f"user/{ROBOT}/permissions", robots.UserRobotPermissionsView.as_view(), name="api-user-robot-permissions"),
    path(f"{ORG}/robots", robots.OrgRobotListView.as_view(), name="api-org-robots"),
    path(f"{ORG}/{ROBOT}", robots.OrgRobotView.as_view(), name="api-org-robot"),
    path(f"{ORG}/{ROBOT}/regenerate", robots.OrgRobotRegenerateView.as_view(), name="api-org-robot-regenerate"),
    path(f"{ORG}/{ROBOT}/permissions", robots.OrgRobotPermissionsView.as_view(), name="api-org-robot-permissions"),
    # App-specific tokens
    path("user/apptoken", tokens.AppTokenListView.as_view(), name="api-apptokens"),
    path("user/apptoken/<str:token_uuid>", tokens.AppTokenView.as_view(), name="api-apptoken"),
    # OAuth applications
    path(f"{ORG}/applications", applications.ApplicationListView.as_view(), name="api-applications"),
    path(f"{ORG}/applications/<str:client_id>", applications.ApplicationView.as_view(), name="api-application"),
    path(
        f"{ORG}/applications/<str:client_id>/resetclientsecret",
        applications.ApplicationResetSecretView.as_view(),
        name="api-application-reset-secret",
    ),
    path("app/<str:client_id>", applications.ApplicationInformationView.as_view(), name="api-app-information"),
    # Superuser
    path("superuser/users/", superuser.SuperUserListView.as_view(), name="api-superuser-users"),
    path("superuser/users/<str:username>", superuser.SuperUserManagementView.as_view(), name="api-superuser-user"),
    path(
        "superuser/organizations/",
        superuser.SuperUserOrganizationListView.as_view(),
        name="api-superuser-organizations",
    ),
    path(
        "superuser/organizations/<str:name>",
        superuser.SuperUserOrganizationView.as_view(),
        name="api-superuser-organization",
    ),
]
