package main

// drawPlots draws the PNG plots next to the report and returns their file
// names (relative to the report).
func drawPlots(rep Report, dir string) []string { return nil }
