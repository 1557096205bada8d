"""The Notary Project plugin protocol (plugin extensibility, contract 1.0), both ways: `notation-sigscope`
answers notation with any sigscope key, and `sigscope sign --format notation --plugin NAME` runs another
vendor's `notation-NAME`."""
