package dicom

import "github.com/wardgate/wardgate/dicom/internal/dicomtest"

// The DICOM test helpers under the names these tests use.
var (
	requireTool   = dicomtest.RequireTool
	dcmtk         = dicomtest.DCMTK
	mustDCMTK     = dicomtest.MustDCMTK
	storescp      = dicomtest.Storescp
	freePort      = dicomtest.FreePort
	fixtures      = dicomtest.Fixtures
	fixturePath   = dicomtest.FixturePath
	instanceUID   = dicomtest.InstanceUID
	writeCT       = dicomtest.WriteCT
	writeCTs      = dicomtest.WriteCTs
	onlyFile      = dicomtest.OnlyFile
	waitFor       = dicomtest.WaitFor
	discardLogger = dicomtest.DiscardLogger
)

const ctImage = dicomtest.CTImage
