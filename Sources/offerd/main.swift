print("offerd: not yet implemented")
