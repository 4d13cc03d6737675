"""The admin API's .proto files and their generated Python code (regenerate with generate.py)."""
