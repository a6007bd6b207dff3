"""DynamoDB's expression language, evaluated on items in DynamoDB's JSON form
({"S": "..."}, {"N": "..."}, {"M": {...}} ...), for the in-process fake
(`fake_aws`): UpdateExpression (SET with several clauses, `+`/`-`,
`if_not_exists`, `list_append`; REMOVE lists; ADD; DELETE),
ConditionExpression / FilterExpression (comparisons, BETWEEN, IN, AND / OR /
NOT, parentheses, `attribute_exists`, `attribute_not_exists`,
`attribute_type`, `begins_with`, `contains`, `size`), KeyConditionExpression
and ProjectionExpression, with `#name` and `:value` placeholders.

The grammar is DynamoDB's (Developer Guide, "Expressions"); a clause this
module cannot read raises ExpressionError rather than being guessed at, so the
fake never answers differently from the service without saying so."""

from __future__ import annotations

import copy
import re
from decimal import Decimal
from typing import Any

Item = dict[str, Any]
Path = list[str | int]

_TOKEN = re.compile(
    r"\s*(?:(?P<num>\d+)|(?P<name>#?[A-Za-z_][A-Za-z0-9_-]*)|(?P<value>:[A-Za-z0-9_]+)|(?P<op><>|<=|>=|[=<>()\[\],.+-]))"
)
_CLAUSES = ("SET", "REMOVE", "ADD", "DELETE")


class ExpressionError(ValueError):
    """An expression the fake cannot evaluate (or DynamoDB would refuse)."""


def _tokens(text: str) -> list[str]:
    tokens, position = [], 0
    text = text.rstrip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if not match or match.end() == position:
            raise ExpressionError(f"cannot read {text[position:]!r} in {text!r}")
        tokens.append(match.group(match.lastgroup))
        position = match.end()
    return tokens


class _Parser:
    def __init__(self, text: str, names: dict[str, str] | None, values: dict[str, Any] | None) -> None:
        self.text = text
        self.tokens = _tokens(text)
        self.at = 0
        self.names = names or {}
        self.values = values or {}

    # -- tokens
    def peek(self, offset: int = 0) -> str | None:
        index = self.at + offset
        return self.tokens[index] if index < len(self.tokens) else None

    def keyword(self, *words: str) -> bool:
        token = self.peek()
        return token is not None and token.upper() in words

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if token is None or (expected is not None and token.upper() != expected.upper()):
            raise ExpressionError(f"expected {expected or 'more'} at token {self.at} of {self.text!r}")
        self.at += 1
        return token

    def done(self) -> bool:
        return self.at >= len(self.tokens)

    # -- operands
    def name(self) -> str:
        token = self.take()
        if token.startswith("#"):
            if token not in self.names:
                raise ExpressionError(f"{token} is not in ExpressionAttributeNames")
            return self.names[token]
        if not re.match(r"[A-Za-z_]", token):
            raise ExpressionError(f"expected an attribute name, got {token!r} in {self.text!r}")
        return token

    def path(self) -> Path:
        path: Path = [self.name()]
        while self.peek() in (".", "["):
            if self.take() == ".":
                path.append(self.name())
            else:
                path.append(int(self.take()))
                self.take("]")
        return path

    def value(self) -> Any:
        token = self.take()
        if token not in self.values:
            raise ExpressionError(f"{token} is not in ExpressionAttributeValues")
        return self.values[token]

    def operand(self) -> tuple:
        """("value", v) | ("path", p) | ("call", name, args) as a syntax node."""
        token = self.peek()
        if token is None:
            raise ExpressionError(f"expression ends early: {self.text!r}")
        if token.startswith(":"):
            return ("value", self.value())
        if self.peek(1) == "(" and token.lower() in ("if_not_exists", "list_append", "size"):
            self.take()
            self.take("(")
            arguments = [self.operand()]
            while self.peek() == ",":
                self.take()
                arguments.append(self.operand())
            self.take(")")
            return ("call", token.lower(), arguments)
        return ("path", self.path())

    def set_value(self) -> tuple:
        node = self.operand()
        if self.peek() in ("+", "-"):
            return ("arith", self.take(), node, self.operand())
        return node

    # -- conditions
    def condition(self) -> tuple:
        node = self.conjunction()
        while self.keyword("OR"):
            self.take()
            node = ("or", node, self.conjunction())
        return node

    def conjunction(self) -> tuple:
        node = self.negation()
        while self.keyword("AND"):
            self.take()
            node = ("and", node, self.negation())
        return node

    def negation(self) -> tuple:
        if self.keyword("NOT"):
            self.take()
            return ("not", self.negation())
        return self.predicate()

    def predicate(self) -> tuple:
        token = self.peek()
        if token == "(":
            self.take()
            node = self.condition()
            self.take(")")
            return node
        functions = ("attribute_exists", "attribute_not_exists", "attribute_type", "begins_with", "contains")
        if token and token.lower() in functions and self.peek(1) == "(":
            self.take()
            self.take("(")
            first = ("path", self.path()) if token.lower().startswith("attribute") else self.operand()
            arguments = [first]
            while self.peek() == ",":
                self.take()
                arguments.append(self.operand())
            self.take(")")
            return ("fn", token.lower(), arguments)
        left = self.operand()
        if self.keyword("BETWEEN"):
            self.take()
            low = self.operand()
            self.take("AND")
            return ("between", left, low, self.operand())
        if self.keyword("IN"):
            self.take()
            self.take("(")
            options = [self.operand()]
            while self.peek() == ",":
                self.take()
                options.append(self.operand())
            self.take(")")
            return ("in", left, options)
        comparator = self.take()
        if comparator not in ("=", "<>", "<", "<=", ">", ">="):
            raise ExpressionError(f"expected a comparator, got {comparator!r} in {self.text!r}")
        return ("compare", comparator, left, self.operand())


# -- values


def _number(value: Any) -> Decimal:
    return Decimal(value["N"])


def _comparable(value: Any) -> tuple[str, Any]:
    ((kind, inner),) = value.items()
    if kind == "N":
        return kind, Decimal(inner)
    if kind in ("SS", "BS"):
        return kind, frozenset(inner)
    if kind == "NS":
        return kind, frozenset(Decimal(n) for n in inner)
    return kind, inner if kind != "L" and kind != "M" else repr(inner)


def _equal(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return False
    if "L" in a or "M" in a:
        return a == b
    return _comparable(a) == _comparable(b)


def _number_text(number: Decimal) -> str:
    text = format(number.normalize(), "f") if number == number.to_integral() else str(number.normalize())
    return text


def _get(item: Item | None, path: Path) -> Any:
    current: Any = {"M": item} if item is not None else None
    for step in path:
        if current is None:
            return None
        if isinstance(step, int):
            elements = current.get("L")
            current = elements[step] if elements is not None and step < len(elements) else None
        else:
            members = current.get("M")
            current = members.get(step) if members is not None else None
    return current


def _parent(item: Item, path: Path) -> tuple[Any, str | int]:
    """The plain dict (of a map) or list (of a list) that holds the path's last step."""
    holder: Any = item  # the top level is a plain {name: value} dict
    for position, step in enumerate(path[:-1]):
        try:
            typed = holder[step]
        except (KeyError, IndexError, TypeError) as error:
            raise ExpressionError(f"the document path {path} does not exist") from error
        holder = typed.get("L") if isinstance(path[position + 1], int) else typed.get("M")
        if holder is None:
            raise ExpressionError(f"the document path {path} does not match the item")
    return holder, path[-1]


def _set(item: Item, path: Path, value: Any) -> None:
    holder, step = _parent(item, path)
    if isinstance(step, int):
        if step >= len(holder):
            holder.append(value)
        else:
            holder[step] = value
    else:
        holder[step] = value


def _remove(item: Item, path: Path) -> None:
    try:
        holder, step = _parent(item, path)
    except ExpressionError:
        return
    if isinstance(step, int):
        if step < len(holder):
            del holder[step]
    else:
        holder.pop(step, None)


def _evaluate(node: tuple, item: Item | None) -> Any:
    kind = node[0]
    if kind == "value":
        return node[1]
    if kind == "path":
        return _get(item, node[1])
    if kind == "arith":
        _, op, left, right = node
        a, b = _evaluate(left, item), _evaluate(right, item)
        if a is None or b is None or "N" not in a or "N" not in b:
            raise ExpressionError("an operand of + or - is missing or not a number")
        return {"N": _number_text(_number(a) + _number(b) if op == "+" else _number(a) - _number(b))}
    _, name, arguments = node
    if name == "if_not_exists":
        present = _evaluate(arguments[0], item)
        return present if present is not None else _evaluate(arguments[1], item)
    if name == "list_append":
        a, b = (_evaluate(argument, item) for argument in arguments)
        if a is None or b is None or "L" not in a or "L" not in b:
            raise ExpressionError("list_append takes two lists")
        return {"L": [*a["L"], *b["L"]]}
    if name == "size":
        value = _evaluate(arguments[0], item)
        if value is None:
            return None
        ((kind, inner),) = value.items()
        return {"N": str(len(inner.encode()) if kind == "S" else len(inner))}
    raise ExpressionError(f"unknown function {name}")


def _holds(node: tuple, item: Item | None) -> bool:
    kind = node[0]
    if kind == "or":
        return _holds(node[1], item) or _holds(node[2], item)
    if kind == "and":
        return _holds(node[1], item) and _holds(node[2], item)
    if kind == "not":
        return not _holds(node[1], item)
    if kind == "fn":
        _, name, arguments = node
        if name == "attribute_exists":
            return _get(item, arguments[0][1]) is not None
        if name == "attribute_not_exists":
            return _get(item, arguments[0][1]) is None
        first = _evaluate(arguments[0], item)
        second = _evaluate(arguments[1], item)
        if first is None or second is None:
            return False
        if name == "attribute_type":
            return next(iter(first)) == second.get("S")
        if name == "begins_with":
            ((a_kind, a),), ((b_kind, b),) = first.items(), second.items()
            return a_kind == b_kind and a_kind in ("S", "B") and a.startswith(b)
        if name == "contains":
            ((a_kind, a),) = first.items()
            if a_kind == "S":
                return "S" in second and second["S"] in a
            if a_kind in ("SS", "NS", "BS"):
                return _comparable(second)[1] in _comparable(first)[1] if len(second) == 1 else False
            if a_kind == "L":
                return any(_equal(element, second) for element in a)
            return False
    if kind == "between":
        value, low, high = (_evaluate(n, item) for n in node[1:])
        return _compare(">=", value, low) and _compare("<=", value, high)
    if kind == "in":
        value = _evaluate(node[1], item)
        return any(_equal(value, _evaluate(option, item)) for option in node[2])
    if kind == "compare":
        _, comparator, left, right = node
        return _compare(comparator, _evaluate(left, item), _evaluate(right, item))
    raise ExpressionError(f"not a condition: {node}")


def _compare(comparator: str, a: Any, b: Any) -> bool:
    if comparator == "=":
        return _equal(a, b)
    if comparator == "<>":
        return a is not None and b is not None and not _equal(a, b)
    if a is None or b is None:
        return False
    (a_kind, a_value), (b_kind, b_value) = _comparable(a), _comparable(b)
    if a_kind != b_kind or a_kind not in ("S", "N", "B"):
        return False
    return {
        "<": a_value < b_value,
        "<=": a_value <= b_value,
        ">": a_value > b_value,
        ">=": a_value >= b_value,
    }[comparator]


# -- the public functions


def condition_holds(
    expression: str | None, item: Item | None, names: dict[str, str] | None = None, values: dict[str, Any] | None = None
) -> bool:
    """Whether `item` (None: no such item) satisfies a ConditionExpression / FilterExpression."""
    if not expression:
        return True
    parser = _Parser(expression, names, values)
    node = parser.condition()
    if not parser.done():
        raise ExpressionError(f"unexpected {parser.peek()!r} in {expression!r}")
    return _holds(node, item)


def apply_update(
    expression: str, item: Item | None, names: dict[str, str] | None = None, values: dict[str, Any] | None = None
) -> Item:
    """The item after an UpdateExpression (a new item from its key when `item` is None is the caller's)."""
    parser = _Parser(expression, names, values)
    actions: list[tuple] = []
    seen: set[str] = set()
    while not parser.done():
        clause = parser.take().upper()
        if clause not in _CLAUSES:
            raise ExpressionError(f"expected SET, REMOVE, ADD or DELETE, got {clause!r} in {expression!r}")
        if clause in seen:
            raise ExpressionError(f"{clause} appears twice in {expression!r}")
        seen.add(clause)
        while True:
            path = parser.path()
            if clause == "SET":
                parser.take("=")
                actions.append(("SET", path, parser.set_value()))
            elif clause == "REMOVE":
                actions.append(("REMOVE", path, None))
            else:
                actions.append((clause, path, ("value", parser.value())))
            if parser.peek() != ",":
                break
            parser.take(",")
            if parser.keyword(*_CLAUSES) and parser.peek(1) not in ("=", ".", "["):
                raise ExpressionError(f"a comma before {parser.peek()} in {expression!r}")
    # Every operand reads the item as it was before the update.
    before = item
    after = copy.deepcopy(item) if item is not None else {}
    resolved = [(action, path, _evaluate(node, before) if node else None) for action, path, node in actions]
    for action, path, value in resolved:
        if action == "SET":
            if value is None:
                raise ExpressionError(f"SET {path}: the operand names an attribute that does not exist")
            _set(after, path, value)
        elif action == "REMOVE":
            _remove(after, path)
        elif action == "ADD":
            current = _get(after, path)
            if current is None:
                _set(after, path, value)
            elif "N" in value and "N" in current:
                _set(after, path, {"N": _number_text(_number(current) + _number(value))})
            else:
                (kind,) = value
                if kind not in ("SS", "NS", "BS") or kind not in current:
                    raise ExpressionError(f"ADD {path}: types do not match")
                merged = list(current[kind]) + [v for v in value[kind] if v not in current[kind]]
                _set(after, path, {kind: merged})
        else:  # DELETE from a set
            current = _get(after, path)
            if current is not None:
                (kind,) = value
                remaining = [v for v in current.get(kind, []) if v not in value[kind]]
                if remaining:
                    _set(after, path, {kind: remaining})
                else:
                    _remove(after, path)
    return after


def project(item: Item, expression: str | None, names: dict[str, str] | None = None) -> Item:
    """The item reduced to a ProjectionExpression's paths (top-level names and nested paths)."""
    if not expression:
        return item
    parser = _Parser(expression, names, None)
    projected: Item = {}
    while not parser.done():
        path = parser.path()
        value = _get(item, path)
        if value is not None:
            if len(path) == 1:
                projected[path[0]] = value
            else:  # a nested path keeps its enclosing maps, as DynamoDB returns it
                top = projected.setdefault(path[0], copy.deepcopy(item[path[0]]))
                projected[path[0]] = top
        if parser.peek() == ",":
            parser.take()
    return projected


def key_condition(expression: str, names: dict[str, str] | None, values: dict[str, Any] | None) -> tuple:
    """A KeyConditionExpression as (partition name, partition value, sort condition node or None)."""
    parser = _Parser(expression, names, values)
    node = parser.condition()
    if not parser.done():
        raise ExpressionError(f"unexpected {parser.peek()!r} in {expression!r}")
    parts = [node[1], node[2]] if node[0] == "and" else [node]
    partition = next(
        (p for p in parts if p[0] == "compare" and p[1] == "=" and p[2][0] == "path" and p[3][0] == "value"), None
    )
    if partition is None or len(parts) > 2:
        raise ExpressionError(f"no partition key equality in {expression!r}")
    sort = next((p for p in parts if p is not partition), None)
    return partition[2][1][0], partition[3][1], sort


def holds(node: tuple | None, item: Item) -> bool:
    return node is None or _holds(node, item)
