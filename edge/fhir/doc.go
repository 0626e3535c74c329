// Package fhir is wardgate's side of the FHIR R4 record:
//
//   - the mapper (mapper.go, observation.go, device.go, imagingstudy.go)
//     turns what wardgate receives (monitor readings with their patient,
//     DICOM study headers) into resources, each wrapped in the Bundle entry
//     that writes it idempotently: conditional create for Observations,
//     Devices and Endpoints, conditional update for ImagingStudies; every
//     resource is validated (package r4) before it leaves the mapper;
//   - the client (client.go, patient.go, encounter.go) with its TLS and
//     three authentication schemes (bearer file, OAuth2 client credentials,
//     SMART backend services: smart.go);
//   - the Deliverer (deliver.go), which leases entries from the outbox,
//     posts them as transaction Bundles, and acknowledges, retries or
//     dead-letters each by the record's answer.
//
// model.go holds the parts of FHIR R4 that wardgate writes, as JSON types.
package fhir
