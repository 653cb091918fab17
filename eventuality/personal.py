"""Personal data in events: the :class:`PersonalData` marker and its checks at class definition.

A payload field marked ``Annotated[str, PersonalData]`` is stored encrypted with a key of its
*subject* (the person it is about), named by the event class: ``__personal_subject__ =
"customer_id"``. ``await store.forget(subject)`` deletes that key, and from then on every read
sees the field's mask instead (crypto-shredding: the events stay, the data is gone). The
declaration is checked here, when the class is defined, so a mistake fails at import rather
than at the first write.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, get_args, get_origin

from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

__all__ = ["DEFAULT_MASK", "PersonalData", "declare_personal_data"]

DEFAULT_MASK = "[erased]"
"""What a ``str`` field shows once its subject is forgotten, unless the field names a mask."""

_UNSET: Any = object()
_SUBJECT_TYPES = (str, int, uuid.UUID)


class PersonalData:
    """Marks a payload field as personal data: ``Annotated[str, PersonalData]``, or with the
    value readers see once the subject is forgotten: ``Annotated[str, PersonalData(mask="…")]``.

    The mask is checked against the field's type when the class is defined. Without one, a
    ``str`` field shows ``"[erased]"`` and an optional field ``None``; any other type must name
    its mask.
    """

    __slots__ = ("mask",)

    def __init__(self, *, mask: Any = _UNSET) -> None:
        self.mask = mask

    def __repr__(self) -> str:
        return "PersonalData()" if self.mask is _UNSET else f"PersonalData(mask={self.mask!r})"


def _is_marker(item: object) -> bool:
    return item is PersonalData or isinstance(item, PersonalData)


def _marker(field: FieldInfo) -> PersonalData | None:
    found = [item for item in field.metadata if _is_marker(item)]
    if not found:
        return None
    return found[-1] if isinstance(found[-1], PersonalData) else PersonalData()


def _nested_marker(annotation: Any) -> bool:
    """Whether ``PersonalData`` sits inside the type (``list[Annotated[str, PersonalData]]``)."""
    if get_origin(annotation) is Annotated:
        inner, *metadata = get_args(annotation)
        return any(_is_marker(m) for m in metadata) or _nested_marker(inner)
    return any(_nested_marker(arg) for arg in get_args(annotation))


def declare_personal_data(cls: type[BaseModel], payload_fields: frozenset[str]) -> dict[str, Any]:
    """Check ``cls``'s personal-data declaration; return its personal fields and their masks
    (as JSON values, the form a stored payload holds).

    :raises TypeError: a marker on a nested type, no ``__personal_subject__`` or one naming a
        missing, personal or unusable field, or a mask that does not fit its field's type.
    """
    name = cls.__qualname__
    masks: dict[str, Any] = {}
    for field_name in sorted(payload_fields):
        field = cls.model_fields[field_name]
        if _nested_marker(field.annotation):
            raise TypeError(
                f"{name}.{field_name} marks PersonalData inside its type; only a whole payload "
                f"field can be personal data: {field_name}: Annotated[<type>, PersonalData]"
            )
        marker = _marker(field)
        if marker is not None:
            masks[field_name] = _mask(name, field_name, field, marker)
    subject = getattr(cls, "__personal_subject__", None)
    if not masks and subject is None:
        return masks
    if subject is None:
        raise TypeError(
            f"{name} marks {', '.join(sorted(masks))} as PersonalData but names no subject: "
            f"add __personal_subject__ = '<field>' naming the field that holds the id of the "
            "person the data is about (each subject gets its own key; store.forget(subject) "
            "erases it)"
        )
    if not isinstance(subject, str) or not (subject in payload_fields or subject == "aggregate_id"):
        fields = ", ".join(sorted(payload_fields)) or "none"
        raise TypeError(
            f"{name}.__personal_subject__ = {subject!r} names no field of the event (payload "
            f"fields: {fields}); name a payload field, or 'aggregate_id'"
        )
    if subject in masks:
        raise TypeError(
            f"{name}.__personal_subject__ = {subject!r} names a PersonalData field: the subject "
            "must stay readable to find its key (and to forget it). Keep the subject a plain "
            "id (a customer id, not an email address) and mark the other fields"
        )
    if subject != "aggregate_id" and not _subject_type(cls.model_fields[subject].annotation):
        raise TypeError(
            f"{name}.{subject}, the personal-data subject, is "
            f"{cls.model_fields[subject].annotation!r}; a subject must be a str, int or UUID "
            "that is always present (not optional)"
        )
    return masks


def _subject_type(annotation: Any) -> bool:
    if get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    return isinstance(annotation, type) and issubclass(annotation, _SUBJECT_TYPES)


def _mask(owner: str, field_name: str, field: FieldInfo, marker: PersonalData) -> Any:
    """The field's mask as a JSON value, checked against the field's type and constraints."""
    constraints = [m for m in field.metadata if not _is_marker(m)]
    annotation: Any = (
        Annotated[(field.annotation, *constraints)] if constraints else field.annotation
    )
    adapter: TypeAdapter[Any] = TypeAdapter(annotation)
    if marker.mask is _UNSET:
        candidates: list[Any] = [None, DEFAULT_MASK]
    else:
        candidates = [marker.mask]
    errors: list[str] = []
    for candidate in candidates:
        try:
            value = adapter.validate_python(candidate)
        except ValidationError as exc:
            errors.append(str(exc))
            continue
        return adapter.dump_python(value, mode="json")
    if marker.mask is _UNSET:
        raise TypeError(
            f"{owner}.{field_name} is PersonalData of type {field.annotation!r}, which has no "
            f"default mask (a str field shows {DEFAULT_MASK!r}, an optional one None): name "
            "the value readers see once the subject is forgotten, "
            "Annotated[<type>, PersonalData(mask=...)]"
        )
    raise TypeError(
        f"{owner}.{field_name}: PersonalData(mask={marker.mask!r}) does not fit the field's "
        f"type {field.annotation!r}: {errors[-1]}"
    )
