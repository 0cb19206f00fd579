"""What every command shares: user errors printed as one line, and checks of the command line."""
