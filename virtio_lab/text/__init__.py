"""Text formats: ``lspci`` dumps and their -vvv decoding, ``explain`` for pasted dumps,
the oracle's JSON ``dump``, and comparisons (``compare_dumps``, ``diff``)."""
