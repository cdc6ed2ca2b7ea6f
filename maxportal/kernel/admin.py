"""Admin building blocks shared by the apps."""

from django.contrib import admin


class ReadOnlyInline(admin.TabularInline):
    """An inline that shows history (a ledger, an audit trail) and lets no one edit it."""

    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False
