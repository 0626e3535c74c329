// Package dataset reads and re-encodes DICOM data sets, never holding one
// whole in memory: ReadInstanceHeader reads what wardgate keeps of an
// instance (InstanceHeader: identifiers, patient and study attributes, pixel
// data skipped) within bounds checked before anything is allocated, and
// NewLEConverter re-encodes a data set between the two uncompressed Little
// Endian transfer syntaxes as it is read. It is the only package that uses
// github.com/suyashkumar/dicom (for the data dictionary and parsing).
package dataset
