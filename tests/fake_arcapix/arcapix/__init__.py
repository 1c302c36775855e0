"""A fake of PixStor's proprietary ``arcapix`` runtime, for the drop-in test only.

It mirrors the import paths public PixStor plugins use (docs/pixstor-plugins.md, "Imports a
plugin uses") and records each ``Metadata.update`` as a JSON line in the file named by
$FAKE_ARCAPIX_OUT.
"""
