"""The web log-in page with the brute-force limits of :mod:`config.ratelimit`."""

from __future__ import annotations

from django.contrib.auth import views as auth_views

from config import ratelimit


class LimitedLoginView(auth_views.LoginView):
    """Django's log-in page; refused (429, ``Retry-After``) while the account or the
    client address is over its failure limit, whatever the password."""

    body_limit = "small"  # config.limits

    def post(self, request, *args, **kwargs):
        username = request.POST.get("username", "")[:150]
        address = ratelimit.client_address(request)
        refused = ratelimit.refusal(username, address)
        if refused is not None:
            form = self.get_form()
            context = self.get_context_data(form=form, throttled=refused.message)
            response = self.render_to_response(context, status=429)
            response["Retry-After"] = str(refused.retry_after)
            return response
        response = super().post(request, *args, **kwargs)
        if request.user.is_authenticated:
            ratelimit.clear_account(username)
        else:
            ratelimit.record_failure(username, address)
        return response
