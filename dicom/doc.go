// Package dicom will hold wardgate's DICOM network layer: the PS3.8 upper
// layer, PS3.7 DIMSE (C-ECHO, C-STORE as SCP and SCU), on top of
// suyashkumar/dicom for data sets. It stores into buffer.Spool and never
// imports edge.
package dicom
