"""Front-ends: the prompt_toolkit REPL and the script runner."""
