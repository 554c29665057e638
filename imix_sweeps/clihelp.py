"""The argparse help formatter of the project's command-line tools (``imix-analysis``,
``python -m launchers``): every option's default shown, descriptions kept as written."""

from __future__ import annotations

import argparse


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults shown in every option's help, descriptions kept as written."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "(default" in text or action.default in (None, False, argparse.SUPPRESS):
            return text  # said in the text already, or nothing to show (flags, optional values)
        return super()._get_help_string(action)
