"""One module per demo data set: each reads its rows straight out of a registry archive.

A reader takes the archive's path and returns rows (dicts of the columns a task reads). It
parses files, never imports or runs the package it reads from.
"""
