"""The page an e-mail confirmation link opens (``/authrepoemail?code=...``).

Opening the link asks; the button confirms. A GET that confirmed by itself would be confirmed by
mail scanners that fetch every link of a message before anyone reads it.
"""

from django.shortcuts import render
from django.views import View

from notifications import services


class AuthorizeEmailView(View):
    def get(self, request):
        code = request.GET.get("code", "")
        record = services.authorized_email_for_code(code=code)
        return self._page(request, record, "ask" if record is not None else "invalid", code=code)

    def post(self, request):
        record = services.authorized_email_confirm(code=request.POST.get("code", ""))
        return self._page(request, record, "confirmed" if record is not None else "invalid")

    def _page(self, request, record, state: str, code: str = ""):
        titles = {"ask": "Confirm e-mail notifications", "confirmed": "Address confirmed", "invalid": "Invalid link"}
        context = {"state": state, "title": titles[state], "code": code}
        if record is not None:
            context.update(repository=record.repository.full_name, email=record.email)
        return render(request, "notifications/authorize_email.html", context, status=404 if state == "invalid" else 200)
