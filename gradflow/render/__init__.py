"""What is shown: views, tables, charts and text formats. Returns text; never prints."""
