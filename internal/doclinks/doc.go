// Package doclinks holds no code: its test checks that every relative link
// in README.md and docs/*.md points at a file of the repository and, with
// a #fragment, at a heading of the page it names.
package doclinks
