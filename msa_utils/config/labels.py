"""The three classes in the paper's id order (positive 0, negative 1, neutral 2), and the maps that read other
tags (the paper's numbers) as them."""

LABELS = ("positive", "negative", "neutral")
LABEL2ID = {name: i for i, name in enumerate(LABELS)}
"""Class name to id."""

LABEL_MAPS: dict[str, dict[str, str]] = {"paper": {"0": "positive", "1": "negative", "2": "neutral"}}
"""Named tag -> class-name maps for ``data.label_map``: ``paper``, the paper's numbering of the classes."""


def resolve_label_map(setting: str | dict[str, str] | None) -> dict[str, str] | None:
    """The tag -> class-name map of a ``data.label_map`` setting: ``None``, a preset of :data:`LABEL_MAPS` by
    name, or a dict; tags stripped and lower-cased (as tags are read), values class names of :data:`LABELS`.
    Raises ValueError for an unknown preset, an empty map, a value that is no class name, a tag that is ``null``
    or another class's name, or two tags that read the same."""
    if setting is None:
        return None
    if isinstance(setting, str):
        if setting not in LABEL_MAPS:
            raise ValueError(f"unknown label map {setting!r}; the presets are {sorted(LABEL_MAPS)}, or give a JSON "
                             'object of tag -> class name, e.g. {"pos": "positive"}')
        setting = LABEL_MAPS[setting]
    if not setting:
        raise ValueError("an empty label map maps nothing: leave label_map unset (null) instead")
    resolved: dict[str, str] = {}
    for tag, name in setting.items():
        key = tag.strip().lower()
        if name not in LABELS:
            raise ValueError(f"label map: tag {tag!r} maps to {name!r}, which is not a class name {LABELS}")
        if key in ("", "null") or key in LABELS and key != name:
            raise ValueError(f"label map: tag {tag!r} cannot be mapped (empty, 'null' or another class's name)")
        if key in resolved:
            raise ValueError(f"label map: tags read the same once stripped and lower-cased: {key!r}")
        resolved[key] = name
    return resolved
