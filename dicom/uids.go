package dicom

// ImplementationClassUID identifies wardgate's DICOM implementation in
// association negotiation and in the Part 10 files it writes. It sits under
// the 2.25 root (a UUID turned into a decimal integer, PS3.5 B.2), so no
// registration was needed.
const ImplementationClassUID = "2.25.241666188883481950910999649196619935893"

// ImplementationVersionName names this version of wardgate's DICOM
// implementation (VR SH, at most 16 characters).
const ImplementationVersionName = "WARDGATE_0.1"

// ApplicationContextName is the only DICOM application context (PS3.7 A.2.1).
const ApplicationContextName = "1.2.840.10008.3.1.1.1"

// CTImageStorage is the CT Image Storage SOP Class.
const CTImageStorage = "1.2.840.10008.5.1.4.1.1.2"

// VerificationSOPClass is the C-ECHO SOP class (PS3.4 Annex A).
const VerificationSOPClass = "1.2.840.10008.1.1"

// Transfer syntax UIDs (PS3.5 Section 10, PS3.6 Annex A).
const (
	ImplicitVRLittleEndian         = "1.2.840.10008.1.2"
	ExplicitVRLittleEndian         = "1.2.840.10008.1.2.1"
	EncapsulatedUncompressedExplLE = "1.2.840.10008.1.2.1.98"
	DeflatedExplicitVRLittleEndian = "1.2.840.10008.1.2.1.99"
	ExplicitVRBigEndian            = "1.2.840.10008.1.2.2" // retired, still sent by old modalities
	JPEGBaseline8Bit               = "1.2.840.10008.1.2.4.50"
	JPEGExtended12Bit              = "1.2.840.10008.1.2.4.51"
	JPEGLossless                   = "1.2.840.10008.1.2.4.57"
	JPEGLosslessSV1                = "1.2.840.10008.1.2.4.70"
	JPEGLSLossless                 = "1.2.840.10008.1.2.4.80"
	JPEGLSNearLossless             = "1.2.840.10008.1.2.4.81"
	JPEG2000Lossless               = "1.2.840.10008.1.2.4.90"
	JPEG2000                       = "1.2.840.10008.1.2.4.91"
	JPEG2000MCLossless             = "1.2.840.10008.1.2.4.92"
	JPEG2000MC                     = "1.2.840.10008.1.2.4.93"
	MPEG2MPML                      = "1.2.840.10008.1.2.4.100"
	MPEG2MPMLF                     = "1.2.840.10008.1.2.4.100.1"
	MPEG2MPHL                      = "1.2.840.10008.1.2.4.101"
	MPEG2MPHLF                     = "1.2.840.10008.1.2.4.101.1"
	MPEG4HP41                      = "1.2.840.10008.1.2.4.102"
	MPEG4HP41F                     = "1.2.840.10008.1.2.4.102.1"
	MPEG4HP41BD                    = "1.2.840.10008.1.2.4.103"
	MPEG4HP41BDF                   = "1.2.840.10008.1.2.4.103.1"
	MPEG4HP422D                    = "1.2.840.10008.1.2.4.104"
	MPEG4HP422DF                   = "1.2.840.10008.1.2.4.104.1"
	MPEG4HP423D                    = "1.2.840.10008.1.2.4.105"
	MPEG4HP423DF                   = "1.2.840.10008.1.2.4.105.1"
	MPEG4HP42Stereo                = "1.2.840.10008.1.2.4.106"
	MPEG4HP42StereoF               = "1.2.840.10008.1.2.4.106.1"
	HEVCMP51                       = "1.2.840.10008.1.2.4.107"
	HEVCM10P51                     = "1.2.840.10008.1.2.4.108"
	HTJ2KLossless                  = "1.2.840.10008.1.2.4.201"
	HTJ2KLosslessRPCL              = "1.2.840.10008.1.2.4.202"
	HTJ2K                          = "1.2.840.10008.1.2.4.203"
	JPEGXLLossless                 = "1.2.840.10008.1.2.4.110"
	JPEGXLJPEGRecompression        = "1.2.840.10008.1.2.4.111"
	JPEGXL                         = "1.2.840.10008.1.2.4.112"
	RLELossless                    = "1.2.840.10008.1.2.5"
)

// storableTransferSyntaxes are the transfer syntaxes whose data sets we can
// keep exactly as received: every native and encapsulated syntax whose pixel
// data travels inside the data set. The JPIP referenced syntaxes
// (1.2.840.10008.1.2.4.94/95) are left out on purpose: their pixels live on
// a JPIP server, so a spooled copy would not be self-contained.
var storableTransferSyntaxes = setOf(
	ImplicitVRLittleEndian, ExplicitVRLittleEndian, EncapsulatedUncompressedExplLE,
	DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian,
	JPEGBaseline8Bit, JPEGExtended12Bit, JPEGLossless, JPEGLosslessSV1,
	JPEGLSLossless, JPEGLSNearLossless,
	JPEG2000Lossless, JPEG2000, JPEG2000MCLossless, JPEG2000MC,
	MPEG2MPML, MPEG2MPMLF, MPEG2MPHL, MPEG2MPHLF,
	MPEG4HP41, MPEG4HP41F, MPEG4HP41BD, MPEG4HP41BDF, MPEG4HP422D, MPEG4HP422DF,
	MPEG4HP423D, MPEG4HP423DF, MPEG4HP42Stereo, MPEG4HP42StereoF,
	HEVCMP51, HEVCM10P51,
	HTJ2KLossless, HTJ2KLosslessRPCL, HTJ2K,
	JPEGXLLossless, JPEGXLJPEGRecompression, JPEGXL,
	RLELossless,
)

// IsStorableTransferSyntax reports whether the SCP accepts data sets in
// transfer syntax ts (and stores them byte for byte as received).
func IsStorableTransferSyntax(ts string) bool { return storableTransferSyntaxes[ts] }

// IsUncompressedLittleEndian reports whether ts is Implicit or Explicit VR
// Little Endian: the only pair between which a sender may fall back, and even
// then only after re-encoding the data set (not a byte copy).
func IsUncompressedLittleEndian(ts string) bool {
	return ts == ImplicitVRLittleEndian || ts == ExplicitVRLittleEndian
}

// storageSOPClasses lists the SOP classes of the Storage Service Class
// (PS3.4 Annex B, PS3.6 Annex A), including retired ones that old modalities
// still send. Non-patient objects (PS3.4 Annex GG) are not in it.
var storageSOPClasses = setOf(
	// Projection radiography and mammography.
	"1.2.840.10008.5.1.4.1.1.1",      // Computed Radiography Image
	"1.2.840.10008.5.1.4.1.1.1.1",    // Digital X-Ray Image - For Presentation
	"1.2.840.10008.5.1.4.1.1.1.1.1",  // Digital X-Ray Image - For Processing
	"1.2.840.10008.5.1.4.1.1.1.2",    // Digital Mammography X-Ray Image - For Presentation
	"1.2.840.10008.5.1.4.1.1.1.2.1",  // Digital Mammography X-Ray Image - For Processing
	"1.2.840.10008.5.1.4.1.1.1.3",    // Digital Intra-Oral X-Ray Image - For Presentation
	"1.2.840.10008.5.1.4.1.1.1.3.1",  // Digital Intra-Oral X-Ray Image - For Processing
	"1.2.840.10008.5.1.4.1.1.13.1.3", // Breast Tomosynthesis Image
	"1.2.840.10008.5.1.4.1.1.13.1.4", // Breast Projection X-Ray Image - For Presentation
	"1.2.840.10008.5.1.4.1.1.13.1.5", // Breast Projection X-Ray Image - For Processing
	// CT and MR.
	"1.2.840.10008.5.1.4.1.1.2",   // CT Image
	"1.2.840.10008.5.1.4.1.1.2.1", // Enhanced CT Image
	"1.2.840.10008.5.1.4.1.1.2.2", // Legacy Converted Enhanced CT Image
	"1.2.840.10008.5.1.4.1.1.4",   // MR Image
	"1.2.840.10008.5.1.4.1.1.4.1", // Enhanced MR Image
	"1.2.840.10008.5.1.4.1.1.4.2", // MR Spectroscopy
	"1.2.840.10008.5.1.4.1.1.4.3", // Enhanced MR Color Image
	"1.2.840.10008.5.1.4.1.1.4.4", // Legacy Converted Enhanced MR Image
	// Ultrasound.
	"1.2.840.10008.5.1.4.1.1.3",   // Ultrasound Multi-frame Image (retired)
	"1.2.840.10008.5.1.4.1.1.3.1", // Ultrasound Multi-frame Image
	"1.2.840.10008.5.1.4.1.1.6",   // Ultrasound Image (retired)
	"1.2.840.10008.5.1.4.1.1.6.1", // Ultrasound Image
	"1.2.840.10008.5.1.4.1.1.6.2", // Enhanced US Volume
	"1.2.840.10008.5.1.4.1.1.6.3", // Photoacoustic Image
	// Secondary capture.
	"1.2.840.10008.5.1.4.1.1.7",   // Secondary Capture Image
	"1.2.840.10008.5.1.4.1.1.7.1", // Multi-frame Single Bit Secondary Capture Image
	"1.2.840.10008.5.1.4.1.1.7.2", // Multi-frame Grayscale Byte Secondary Capture Image
	"1.2.840.10008.5.1.4.1.1.7.3", // Multi-frame Grayscale Word Secondary Capture Image
	"1.2.840.10008.5.1.4.1.1.7.4", // Multi-frame True Color Secondary Capture Image
	// Waveforms.
	"1.2.840.10008.5.1.4.1.1.9.1.1", // 12-lead ECG Waveform
	"1.2.840.10008.5.1.4.1.1.9.1.2", // General ECG Waveform
	"1.2.840.10008.5.1.4.1.1.9.1.3", // Ambulatory ECG Waveform
	"1.2.840.10008.5.1.4.1.1.9.1.4", // General 32-bit ECG Waveform
	"1.2.840.10008.5.1.4.1.1.9.2.1", // Hemodynamic Waveform
	"1.2.840.10008.5.1.4.1.1.9.3.1", // Cardiac Electrophysiology Waveform
	"1.2.840.10008.5.1.4.1.1.9.4.1", // Basic Voice Audio Waveform
	"1.2.840.10008.5.1.4.1.1.9.4.2", // General Audio Waveform
	"1.2.840.10008.5.1.4.1.1.9.5.1", // Arterial Pulse Waveform
	"1.2.840.10008.5.1.4.1.1.9.6.1", // Respiratory Waveform
	"1.2.840.10008.5.1.4.1.1.9.6.2", // Multi-channel Respiratory Waveform
	"1.2.840.10008.5.1.4.1.1.9.7.1", // Routine Scalp Electroencephalogram Waveform
	"1.2.840.10008.5.1.4.1.1.9.7.2", // Electromyogram Waveform
	"1.2.840.10008.5.1.4.1.1.9.7.3", // Electrooculogram Waveform
	"1.2.840.10008.5.1.4.1.1.9.7.4", // Sleep Electroencephalogram Waveform
	"1.2.840.10008.5.1.4.1.1.9.8.1", // Body Position Waveform
	// Presentation states.
	"1.2.840.10008.5.1.4.1.1.11.1",  // Grayscale Softcopy Presentation State
	"1.2.840.10008.5.1.4.1.1.11.2",  // Color Softcopy Presentation State
	"1.2.840.10008.5.1.4.1.1.11.3",  // Pseudo-Color Softcopy Presentation State
	"1.2.840.10008.5.1.4.1.1.11.4",  // Blending Softcopy Presentation State
	"1.2.840.10008.5.1.4.1.1.11.5",  // XA/XRF Grayscale Softcopy Presentation State
	"1.2.840.10008.5.1.4.1.1.11.6",  // Grayscale Planar MPR Volumetric Presentation State
	"1.2.840.10008.5.1.4.1.1.11.7",  // Compositing Planar MPR Volumetric Presentation State
	"1.2.840.10008.5.1.4.1.1.11.8",  // Advanced Blending Presentation State
	"1.2.840.10008.5.1.4.1.1.11.9",  // Volume Rendering Volumetric Presentation State
	"1.2.840.10008.5.1.4.1.1.11.10", // Segmented Volume Rendering Volumetric Presentation State
	"1.2.840.10008.5.1.4.1.1.11.11", // Multiple Volume Rendering Volumetric Presentation State
	"1.2.840.10008.5.1.4.1.1.11.12", // Variable Modality LUT Softcopy Presentation State
	// X-ray angiography and fluoroscopy.
	"1.2.840.10008.5.1.4.1.1.12.1",   // X-Ray Angiographic Image
	"1.2.840.10008.5.1.4.1.1.12.1.1", // Enhanced XA Image
	"1.2.840.10008.5.1.4.1.1.12.2",   // X-Ray Radiofluoroscopic Image
	"1.2.840.10008.5.1.4.1.1.12.2.1", // Enhanced XRF Image
	"1.2.840.10008.5.1.4.1.1.12.3",   // X-Ray Angiographic Bi-Plane Image (retired)
	"1.2.840.10008.5.1.4.1.1.13.1.1", // X-Ray 3D Angiographic Image
	"1.2.840.10008.5.1.4.1.1.13.1.2", // X-Ray 3D Craniofacial Image
	"1.2.840.10008.5.1.4.1.1.14.1",   // Intravascular OCT Image - For Presentation
	"1.2.840.10008.5.1.4.1.1.14.2",   // Intravascular OCT Image - For Processing
	// Nuclear medicine and PET.
	"1.2.840.10008.5.1.4.1.1.5",     // Nuclear Medicine Image (retired)
	"1.2.840.10008.5.1.4.1.1.20",    // Nuclear Medicine Image
	"1.2.840.10008.5.1.4.1.1.128",   // Positron Emission Tomography Image
	"1.2.840.10008.5.1.4.1.1.128.1", // Legacy Converted Enhanced PET Image
	"1.2.840.10008.5.1.4.1.1.130",   // Enhanced PET Image
	// Derived objects.
	"1.2.840.10008.5.1.4.1.1.30",    // Parametric Map
	"1.2.840.10008.5.1.4.1.1.66",    // Raw Data
	"1.2.840.10008.5.1.4.1.1.66.1",  // Spatial Registration
	"1.2.840.10008.5.1.4.1.1.66.2",  // Spatial Fiducials
	"1.2.840.10008.5.1.4.1.1.66.3",  // Deformable Spatial Registration
	"1.2.840.10008.5.1.4.1.1.66.4",  // Segmentation
	"1.2.840.10008.5.1.4.1.1.66.5",  // Surface Segmentation
	"1.2.840.10008.5.1.4.1.1.66.6",  // Tractography Results
	"1.2.840.10008.5.1.4.1.1.66.7",  // Label Map Segmentation
	"1.2.840.10008.5.1.4.1.1.66.8",  // Height Map Segmentation
	"1.2.840.10008.5.1.4.1.1.67",    // Real World Value Mapping
	"1.2.840.10008.5.1.4.1.1.68.1",  // Surface Scan Mesh
	"1.2.840.10008.5.1.4.1.1.68.2",  // Surface Scan Point Cloud
	"1.2.840.10008.5.1.4.1.1.90.1",  // Content Assessment Results
	"1.2.840.10008.5.1.4.1.1.91.1",  // Microscopy Bulk Simple Annotations
	"1.2.840.10008.5.1.4.1.1.131",   // Basic Structured Display
	"1.2.840.10008.5.1.4.1.1.200.2", // CT Performed Procedure Protocol
	"1.2.840.10008.5.1.4.1.1.200.8", // XA Performed Procedure Protocol
	// Visible light and ophthalmology.
	"1.2.840.10008.5.1.4.1.1.77.1.1",   // VL Endoscopic Image
	"1.2.840.10008.5.1.4.1.1.77.1.1.1", // Video Endoscopic Image
	"1.2.840.10008.5.1.4.1.1.77.1.2",   // VL Microscopic Image
	"1.2.840.10008.5.1.4.1.1.77.1.2.1", // Video Microscopic Image
	"1.2.840.10008.5.1.4.1.1.77.1.3",   // VL Slide-Coordinates Microscopic Image
	"1.2.840.10008.5.1.4.1.1.77.1.4",   // VL Photographic Image
	"1.2.840.10008.5.1.4.1.1.77.1.4.1", // Video Photographic Image
	"1.2.840.10008.5.1.4.1.1.77.1.5.1", // Ophthalmic Photography 8 Bit Image
	"1.2.840.10008.5.1.4.1.1.77.1.5.2", // Ophthalmic Photography 16 Bit Image
	"1.2.840.10008.5.1.4.1.1.77.1.5.3", // Stereometric Relationship
	"1.2.840.10008.5.1.4.1.1.77.1.5.4", // Ophthalmic Tomography Image
	"1.2.840.10008.5.1.4.1.1.77.1.5.5", // Wide Field Ophthalmic Photography Stereographic Projection Image
	"1.2.840.10008.5.1.4.1.1.77.1.5.6", // Wide Field Ophthalmic Photography 3D Coordinates Image
	"1.2.840.10008.5.1.4.1.1.77.1.5.7", // Ophthalmic OCT En Face Image
	"1.2.840.10008.5.1.4.1.1.77.1.5.8", // Ophthalmic OCT B-scan Volume Analysis
	"1.2.840.10008.5.1.4.1.1.77.1.6",   // VL Whole Slide Microscopy Image
	"1.2.840.10008.5.1.4.1.1.77.1.7",   // Dermoscopic Photography Image
	"1.2.840.10008.5.1.4.1.1.77.1.8",   // Confocal Microscopy Image
	"1.2.840.10008.5.1.4.1.1.77.1.8.1", // Confocal Microscopy Tiled Pyramidal Image
	"1.2.840.10008.5.1.4.1.1.78.1",     // Lensometry Measurements
	"1.2.840.10008.5.1.4.1.1.78.2",     // Autorefraction Measurements
	"1.2.840.10008.5.1.4.1.1.78.3",     // Keratometry Measurements
	"1.2.840.10008.5.1.4.1.1.78.4",     // Subjective Refraction Measurements
	"1.2.840.10008.5.1.4.1.1.78.5",     // Visual Acuity Measurements
	"1.2.840.10008.5.1.4.1.1.78.6",     // Spectacle Prescription Report
	"1.2.840.10008.5.1.4.1.1.78.7",     // Ophthalmic Axial Measurements
	"1.2.840.10008.5.1.4.1.1.78.8",     // Intraocular Lens Calculations
	"1.2.840.10008.5.1.4.1.1.79.1",     // Macular Grid Thickness and Volume Report
	"1.2.840.10008.5.1.4.1.1.80.1",     // Ophthalmic Visual Field Static Perimetry Measurements
	"1.2.840.10008.5.1.4.1.1.81.1",     // Ophthalmic Thickness Map
	"1.2.840.10008.5.1.4.1.1.82.1",     // Corneal Topography Map
	// Structured reports.
	"1.2.840.10008.5.1.4.1.1.88.11", // Basic Text SR
	"1.2.840.10008.5.1.4.1.1.88.22", // Enhanced SR
	"1.2.840.10008.5.1.4.1.1.88.33", // Comprehensive SR
	"1.2.840.10008.5.1.4.1.1.88.34", // Comprehensive 3D SR
	"1.2.840.10008.5.1.4.1.1.88.35", // Extensible SR
	"1.2.840.10008.5.1.4.1.1.88.40", // Procedure Log
	"1.2.840.10008.5.1.4.1.1.88.50", // Mammography CAD SR
	"1.2.840.10008.5.1.4.1.1.88.59", // Key Object Selection Document
	"1.2.840.10008.5.1.4.1.1.88.65", // Chest CAD SR
	"1.2.840.10008.5.1.4.1.1.88.67", // X-Ray Radiation Dose SR
	"1.2.840.10008.5.1.4.1.1.88.68", // Radiopharmaceutical Radiation Dose SR
	"1.2.840.10008.5.1.4.1.1.88.69", // Colon CAD SR
	"1.2.840.10008.5.1.4.1.1.88.70", // Implantation Plan SR
	"1.2.840.10008.5.1.4.1.1.88.71", // Acquisition Context SR
	"1.2.840.10008.5.1.4.1.1.88.72", // Simplified Adult Echo SR
	"1.2.840.10008.5.1.4.1.1.88.73", // Patient Radiation Dose SR
	"1.2.840.10008.5.1.4.1.1.88.74", // Planned Imaging Agent Administration SR
	"1.2.840.10008.5.1.4.1.1.88.75", // Performed Imaging Agent Administration SR
	"1.2.840.10008.5.1.4.1.1.88.76", // Enhanced X-Ray Radiation Dose SR
	"1.2.840.10008.5.1.4.1.1.88.77", // Waveform Annotation SR
	// Encapsulated documents.
	"1.2.840.10008.5.1.4.1.1.104.1", // Encapsulated PDF
	"1.2.840.10008.5.1.4.1.1.104.2", // Encapsulated CDA
	"1.2.840.10008.5.1.4.1.1.104.3", // Encapsulated STL
	"1.2.840.10008.5.1.4.1.1.104.4", // Encapsulated OBJ
	"1.2.840.10008.5.1.4.1.1.104.5", // Encapsulated MTL
	// Radiotherapy.
	"1.2.840.10008.5.1.4.1.1.481.1",  // RT Image
	"1.2.840.10008.5.1.4.1.1.481.2",  // RT Dose
	"1.2.840.10008.5.1.4.1.1.481.3",  // RT Structure Set
	"1.2.840.10008.5.1.4.1.1.481.4",  // RT Beams Treatment Record
	"1.2.840.10008.5.1.4.1.1.481.5",  // RT Plan
	"1.2.840.10008.5.1.4.1.1.481.6",  // RT Brachy Treatment Record
	"1.2.840.10008.5.1.4.1.1.481.7",  // RT Treatment Summary Record
	"1.2.840.10008.5.1.4.1.1.481.8",  // RT Ion Plan
	"1.2.840.10008.5.1.4.1.1.481.9",  // RT Ion Beams Treatment Record
	"1.2.840.10008.5.1.4.1.1.481.10", // RT Physician Intent
	"1.2.840.10008.5.1.4.1.1.481.11", // RT Segment Annotation
	"1.2.840.10008.5.1.4.1.1.481.12", // RT Radiation Set
	"1.2.840.10008.5.1.4.1.1.481.13", // C-Arm Photon-Electron Radiation
	"1.2.840.10008.5.1.4.1.1.481.14", // Tomotherapeutic Radiation
	"1.2.840.10008.5.1.4.1.1.481.15", // Robotic-Arm Radiation
	"1.2.840.10008.5.1.4.1.1.481.16", // RT Radiation Record Set
	"1.2.840.10008.5.1.4.1.1.481.17", // RT Radiation Salvage Record
	"1.2.840.10008.5.1.4.1.1.481.18", // Tomotherapeutic Radiation Record
	"1.2.840.10008.5.1.4.1.1.481.19", // C-Arm Photon-Electron Radiation Record
	"1.2.840.10008.5.1.4.1.1.481.20", // Robotic Radiation Record
	"1.2.840.10008.5.1.4.1.1.481.21", // RT Radiation Set Delivery Instruction
	"1.2.840.10008.5.1.4.1.1.481.22", // RT Treatment Preparation
	"1.2.840.10008.5.1.4.1.1.481.23", // Enhanced RT Image
	"1.2.840.10008.5.1.4.1.1.481.24", // Enhanced Continuous RT Image
	"1.2.840.10008.5.1.4.1.1.481.25", // RT Patient Position Acquisition Instruction
	"1.2.840.10008.5.1.4.34.7",       // RT Beams Delivery Instruction
	"1.2.840.10008.5.1.4.34.10",      // RT Brachy Application Setup Delivery Instruction
)

// IsStorageSOPClass reports whether uid is a Storage SOP class that the SCP
// accepts when it has a StoreHandler.
func IsStorageSOPClass(uid string) bool { return storageSOPClasses[uid] }

// StorageSOPClasses returns the Storage SOP class UIDs the SCP accepts, in
// no particular order.
func StorageSOPClasses() []string {
	out := make([]string, 0, len(storageSOPClasses))
	for uid := range storageSOPClasses {
		out = append(out, uid)
	}
	return out
}

func setOf(uids ...string) map[string]bool {
	m := make(map[string]bool, len(uids))
	for _, u := range uids {
		m[u] = true
	}
	return m
}
