{#- The canonical form of a search query, the key of every query table (ml_query_item,
    ml_query_stats, ml_user_recent_queries, and the published query_topn): the SQL mirror of
    ml.search.text.normalize_query. Lower case, every run of characters that are neither letters
    nor digits (punctuation, symbols, emoji, underscores, whitespace) becomes one space, trimmed,
    at most 100 characters (ml.search.text.MAX_QUERY_CHARS), trimmed again:
      normalize_query('query_text') -> trim(left(trim(regexp_replace(lower(query_text), ...)), 100))
    '' for blank or punctuation-only text, NULL for NULL (Python gives '' for both).
    MariaDB has no NFKC: width and compatibility variants ('ｐｈｏｎｅ', 'ﬁ') are not folded here
    as they are in Python. The connection and the serving tables use utf8mb4_unicode_ci, under which
    such variants compare equal to their folded forms, so a lookup by the Python key still finds
    the row; tests/data/test_normalize_query_sql.py checks both the equality with Python and that.
    The regex is PCRE (MariaDB's REGEXP_REPLACE): \p{L} letters, \p{N} digits, as Python's \w
    without the underscore. -#}
{% macro normalize_query(expr) -%}
    trim(left(trim(regexp_replace(lower({{ expr }}), '[^\\p{L}\\p{N}]+', ' ')), 100))
{%- endmacro %}
