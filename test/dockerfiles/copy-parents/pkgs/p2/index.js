idx
