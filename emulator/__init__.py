"""Project-owned AWS emulator: moto 5.2.5 plus patches that make it behave like real AWS for the deployer's tests."""
