"""Visibility queries: Temporal's list filter language, from text to answers, independent of any store.

- query.py      parses the text with a LALR grammar (lark) into a syntax tree with positions;
- attributes.py says which attributes exist (system, predefined) and their types;
- resolve.py    types the syntax tree against a namespace's custom attributes (model.py is the result);
- values.py     decodes search attribute payloads into one canonical form per type;
- evaluate.py   answers a typed query for a record in Python (the reference semantics);
- paging.py     encodes keyset next-page tokens; scan.py is the Store default built on evaluate.py.

Stores receive a model.VisibilityQuery; SQLite translates it to SQL (persistence/sqlite/visibility.py).
"""
