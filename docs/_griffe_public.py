"""Griffe extension for simkit's API pages: a name a package re-exports explicitly,
`from ._module import name as name` (or `as other_name`), is public API, as pyright reads it.

Griffe treats every imported name as private unless `__all__` lists it; simkit's packages mark
their public names by the explicit re-export instead (see STYLE.md), so this marks them.
"""

import ast
import re

import griffe

# "Example:" / "Example (what it shows):" headings, which simkit's docstrings use: Google style
# as Napoleon reads it, but Griffe takes only "Examples:" as the section that renders `>>>` lines
# as code (anything else becomes an admonition of Markdown text).
_EXAMPLE = re.compile(r"^(?P<indent>[ \t]*)Examples?(?: \((?P<what>.+)\))?:[ \t]*$", re.MULTILINE)


def _examples_section(m: re.Match) -> str:
    indent, what = m.group("indent"), m.group("what")
    if not what:
        return f"{indent}Examples:"
    return f"{indent}Examples:\n{indent}    {what[0].upper()}{what[1:]}:"


class PublicReexports(griffe.Extension):
    def on_alias_instance(self, *, node, alias, agent, **kwargs) -> None:
        if not isinstance(node, ast.ImportFrom) or not node.level:  # relative imports only
            return
        for name in node.names:
            if name.asname == alias.name and not alias.name.startswith("_"):
                alias.public = True


class ExampleSections(griffe.Extension):
    """Read "Example:" and "Example (...):" as Google style's "Examples:" section."""

    def on_object(self, *, obj, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _EXAMPLE.sub(_examples_section, obj.docstring.value)


class RequireDocstrings(griffe.Extension):
    """Warn (so `mkdocs build --strict` fails) on a public function or class of a simkit package
    that has no docstring: the API pages are generated from them."""

    def on_package(self, *, pkg, **kwargs) -> None:
        for module in _packages(pkg):
            for name, member in module.members.items():
                if name.startswith("_") or not member.is_public:
                    continue
                try:
                    target = member.final_target if member.is_alias else member
                except griffe.AliasResolutionError:
                    continue
                if (target.is_function or target.is_class) and not target.docstring:
                    griffe.logger.warning(
                        f"{module.path}.{name} ({target.relative_filepath}:{target.lineno}) "
                        "has no docstring; the API reference is generated from it"
                    )


def _packages(module):
    """The package and its public subpackages, depth first."""
    if module.is_init_module and not module.name.startswith("_"):
        yield module
        for sub in module.modules.values():
            if not sub.is_alias:
                yield from _packages(sub)
