"""Values the HST archive's pipeline gives for the three real WFC3/IR FLTs of the shared files.

Measured once with drizzlepac 3.11.0 ``runmultihap`` on mvmdb's own poller of
``skycell-p0647x17y20`` (files ``ib6o21qnq``, ``ib6o21qqq``, ``ib6o23rtq``; uint8 arrays cast to
float32 / DQ int16 first; offline, ``iref`` an empty folder), 2026-12-06, issue 13. drizzlepac
is not a dependency: these are plain numbers. ``benchmarks/compare_archive.py`` re-measures them.

Pixel positions are 0-based sky-cell indices; boxes ``(xmin, xmax, ymin, ymax)`` inclusive.
"""

SKYCELL = "skycell-p0647x17y20"
FILES = ("ib6o21qnq_flt.fits", "ib6o21qqq_flt.fits", "ib6o23rtq_flt.fits")

#: The product names (identical in mvmdb).
PRODUCTS = (
    "hst_skycell-p0647x17y20_wfc3_ir_f098m_all_drz.fits",
    "hst_skycell-p0647x17y20_wfc3_ir_f098m_coarse-all_drz.fits",
    "hst_skycell-p0647x17y20_wfc3_ir_f140w_all_drz.fits",
    "hst_skycell-p0647x17y20_wfc3_ir_f140w_coarse-all_drz.fits",
)

#: Per product: pixels with data (WHT > 0) outside the cell's last two rows/columns, the sum of
#: SCI (e-/s) over them, and the bounding box of all pixels with data.
DATA = {
    PRODUCTS[0]: (887903, 4318.4977390222875, (9829, 12370, 21256, 21952)),
    PRODUCTS[1]: (98360, 4370.5107740728, (3277, 4122, 7085, 7316)),
    PRODUCTS[2]: (562050, 24598.330540776722, (9830, 11848, 21395, 21952)),
    PRODUCTS[3]: (62126, 26767.05195833487, (3277, 3949, 7131, 7316)),
}

#: SCI photometry keywords of the layers (the filter's, moved from the inputs).
PHOT = {
    "f098m": {"PHOTMODE": "WFC3 IR F098M", "PHOTFLAM": 6.0652999e-20, "PHOTFNU": 1.9687982e-07,
              "PHOTPLAM": 9864.7227, "PHOTBW": 500.85379, "PHOTZPT": -21.1},
    "f140w": {"PHOTMODE": "WFC3 IR F140W", "PHOTFLAM": 1.4759001e-20, "PHOTFNU": 9.5432426e-08,
              "PHOTPLAM": 13922.907, "PHOTBW": 1132.39, "PHOTZPT": -21.1},
}

#: stwcs ``HSTWCS(...).pscale`` of the inputs, which have no IDCSCALE and no SIP: the length of
#: the first CD column (arcsec/px); sqrt|det CD| would be 0.12825.
INPUT_PSCALE = 0.13560

#: Keywords of the archive's PRIMARY header of hst_skycell-p0647x17y20_wfc3_ir_f098m_all_drz.fits (166; COMMENT/HISTORY aside).
PRIMARY_KEYWORDS = (
    'SIMPLE', 'BITPIX', 'NAXIS', 'EXTEND', 'DATE', 'NEXTEND', 'FILENAME', 'FILETYPE', 'TELESCOP',
    'INSTRUME', 'EQUINOX', 'ROOTNAME', 'IMAGETYP', 'PRIMESI', 'TARGNAME', 'RA_TARG', 'DEC_TARG', 'PROPOSID',
    'FGSLOCK', 'REFFRAME', 'MTFLAG', 'DATE-OBS', 'TIME-OBS', 'EXPSTART', 'EXPEND', 'EXPTIME', 'TEXPTIME',
    'QUALITY', 'PA_V3', 'PROCTIME', 'OPUS_VER', 'AWSYSVER', 'AWSDPVER', 'CSYS_VER', 'CAL_VER', 'OBSTYPE',
    'OBSMODE', 'SCLAMP', 'NRPTEXP', 'SUBARRAY', 'SUBTYPE', 'DETECTOR', 'FILTER', 'SAMP_SEQ', 'NSAMP',
    'SAMPZERO', 'APERTURE', 'PROPAPER', 'DIRIMAGE', 'SAACRMAP', 'SCAN_TYP', 'SCAN_WID', 'ANG_SIDE',
    'DWELL_LN', 'DWELL_TM', 'SCAN_ANG', 'SCAN_RAT', 'NO_LINES', 'SCAN_LEN', 'SCAN_COR', 'CSMID', 'MEANEXP',
    'SCALENSE', 'INITGUES', 'CRSIGMAS', 'CRRADIUS', 'CRTHRESH', 'BADINPDQ', 'CRMASK', 'T_SGSTAR',
    'PATTERN1', 'P1_SHAPE', 'P1_PURPS', 'P1_NPTS', 'P1_PSPAC', 'P1_LSPAC', 'P1_ANGLE', 'P1_FRAME',
    'P1_ORINT', 'P1_CENTR', 'PATTSTEP', 'CCDAMP', 'CCDGAIN', 'ATODGNA', 'ATODGNB', 'ATODGNC', 'ATODGND',
    'READNSEA', 'READNSEB', 'READNSEC', 'READNSED', 'BIASLEVA', 'BIASLEVB', 'BIASLEVC', 'BIASLEVD',
    'CRDS_CTX', 'CRDS_VER', 'BIACFILE', 'D2IMFILE', 'DRKCFILE', 'NPOLFILE', 'PCTETAB', 'SNKCFILE',
    'IMA2FLT', 'IMASAT', 'NPOP', 'POPREADS', 'HAPLEVEL', 'PR_INV_L', 'PR_INV_F', 'PR_INV_M', 'DATE-BEG',
    'DATE-END', 'GYROMODE', 'LINENUM', 'RULESVER', 'BLENDVER', 'RULEFILE', 'PROD_VER', 'DRIZPARS',
    'ASN_MTYP', 'NDRIZIM', 'D001VER', 'D001GEOM', 'D001DATA', 'D001DEXP', 'D001OUDA', 'D001OUWE',
    'D001OUCO', 'D001MASK', 'D001WTSC', 'D001KERN', 'D001PIXF', 'D001COEF', 'D001OUUN', 'D001FVAL',
    'D001WKEY', 'D001SCAL', 'D001ISCL', 'D002VER', 'D002GEOM', 'D002DATA', 'D002DEXP', 'D002OUDA',
    'D002OUWE', 'D002OUCO', 'D002MASK', 'D002WTSC', 'D002KERN', 'D002PIXF', 'D002COEF', 'D002OUUN',
    'D002FVAL', 'D002WKEY', 'D002SCAL', 'D002ISCL', 'NPIXFRAC', 'MEANEXPT', 'MEDEXPT', 'MEANNEXP',
    'MEDNEXP', 'SCELLID', 'MEANWHT', 'MEDWHT', 'PINAME', 'NUMEXP',
)

#: Columns of the archive's HDRTAB of the same product (279), in order.
HDRTAB_COLUMNS = (
    'SVMROOTNAME', 'GENDATE', 'ROOTNAME', 'EXTNAME', 'EXTVER', 'A_0_2', 'A_0_3', 'A_0_4', 'A_1_1', 'A_1_2',
    'A_1_3', 'A_2_0', 'A_2_1', 'A_2_2', 'A_3_0', 'A_3_1', 'A_4_0', 'A_ORDER', 'APERTURE', 'ASN_ID',
    'ASN_MTYP', 'ASN_TAB', 'ATODCORR', 'ATODGNA', 'ATODGNB', 'ATODGNC', 'ATODGND', 'ATODTAB', 'B_0_2',
    'B_0_3', 'B_0_4', 'B_1_1', 'B_1_2', 'B_1_3', 'B_2_0', 'B_2_1', 'B_2_2', 'B_3_0', 'B_3_1', 'B_4_0',
    'B_ORDER', 'BADINPDQ', 'BIASCORR', 'BIASFILE', 'BIASLEVA', 'BIASLEVB', 'BIASLEVC', 'BIASLEVD',
    'BINAXIS1', 'BINAXIS2', 'BLEVCORR', 'BPIXTAB', 'BUNIT', 'CAL_VER', 'CCDAMP', 'CCDCHIP', 'CCDGAIN',
    'CCDOFSAB', 'CCDOFSCD', 'CCDOFSTA', 'CCDOFSTB', 'CCDOFSTC', 'CCDOFSTD', 'CCDTAB', 'CD1_1', 'CD1_2',
    'CD2_1', 'CD2_2', 'CENTERA1', 'CENTERA2', 'CHINJECT', 'COMPTAB', 'CRCORR', 'CRMASK', 'CRPIX1', 'CRPIX2',
    'CRRADIUS', 'CRREJTAB', 'CRSIGMAS', 'CRSPLIT', 'CRTHRESH', 'CRVAL1', 'CRVAL2', 'CTEDIR', 'CTEIMAGE',
    'CTYPE1', 'CTYPE2', 'DARKCORR', 'DARKFILE', 'DATAMAX', 'DATAMIN', 'DATE', 'DATE-OBS', 'DEC_APER',
    'DEC_TARG', 'DELTATIM', 'DETECTOR', 'DFLTFILE', 'DGEOFILE', 'DIRIMAGE', 'DQICORR', 'DRIZCORR',
    'EQUINOX', 'ERRCNT', 'EXPEND', 'EXPFLAG', 'EXPNAME', 'EXPSCORR', 'EXPSTART', 'EXPTIME', 'FGSLOCK',
    'FILENAME', 'FILETYPE', 'FILLCNT', 'FILTER', 'FLASHCUR', 'FLASHDUR', 'FLASHSTA', 'FLATCORR', 'FLSHCORR',
    'FLSHFILE', 'GOODMAX', 'GOODMEAN', 'GOODMIN', 'GRAPHTAB', 'GYROMODE', 'IDCSCALE', 'IDCTAB', 'IDCTHETA',
    'IDCV2REF', 'IDCV3REF', 'IMAGETYP', 'INHERIT', 'INITGUES', 'INSTRUME', 'IRAF-TLM', 'LFLTFILE',
    'LINENUM', 'LTM1_1', 'LTM2_2', 'LTV1', 'LTV2', 'MDRIZSKY', 'MDRIZTAB', 'MEANBLEV', 'MEANDARK',
    'MEANEXP', 'MEANFLSH', 'MOONANGL', 'MTFLAG', 'NAXIS1', 'NAXIS2', 'NCOMBINE', 'NGOODPIX', 'NLINCORR',
    'NLINFILE', 'NRPTEXP', 'NSAMP', 'OBSMODE', 'OBSTYPE', 'OCD1_1', 'OCD1_2', 'OCD2_1', 'OCD2_2', 'OCRPIX1',
    'OCRPIX2', 'OCRVAL1', 'OCRVAL2', 'OCTYPE1', 'OCTYPE2', 'OCX10', 'OCX11', 'OCY10', 'OCY11', 'ONAXIS1',
    'ONAXIS2', 'OORIENTA', 'OPUS_VER', 'ORIENTAT', 'ORIGIN', 'OSCNTAB', 'P1_ANGLE', 'P1_CENTR', 'P1_FRAME',
    'P1_LSPAC', 'P1_NPTS', 'P1_ORINT', 'P1_PSPAC', 'P1_PURPS', 'P1_SHAPE', 'P2_ANGLE', 'P2_CENTR',
    'P2_FRAME', 'P2_LSPAC', 'P2_NPTS', 'P2_ORINT', 'P2_PSPAC', 'P2_PURPS', 'P2_SHAPE', 'PA_APER', 'PA_V3',
    'PATTERN1', 'PATTERN2', 'PATTSTEP', 'PFLTFILE', 'PHOTBW', 'PHOTCORR', 'PHOTFLAM', 'PHOTFNU', 'PHOTMODE',
    'PHOTPLAM', 'PHOTZPT', 'PODPSFF', 'POSTARG1', 'POSTARG2', 'PR_INV_F', 'PR_INV_L', 'PR_INV_M', 'PRIMESI',
    'PROCTIME', 'PROPAPER', 'PROPOSID', 'QUALCOM1', 'QUALCOM2', 'QUALCOM3', 'QUALITY', 'RA_APER', 'RA_TARG',
    'READNSEA', 'READNSEB', 'READNSEC', 'READNSED', 'REFFRAME', 'REJ_RATE', 'ROUTTIME', 'RPTCORR',
    'SAA_DARK', 'SAA_EXIT', 'SAA_TIME', 'SAACRMAP', 'SAMP_SEQ', 'SAMPNUM', 'SAMPTIME', 'SAMPZERO',
    'SCALENSE', 'SCLAMP', 'SDQFLAGS', 'SHADCORR', 'SHADFILE', 'SHUTRPOS', 'SIMPLE', 'SIZAXIS1', 'SIZAXIS2',
    'SKYSUB', 'SKYSUM', 'SNRMAX', 'SNRMEAN', 'SNRMIN', 'SOFTERRS', 'STDCFFF', 'STDCFFP', 'SUBARRAY',
    'SUBTYPE', 'SUN_ALT', 'SUNANGLE', 'T_SGSTAR', 'TARGNAME', 'TDFTRANS', 'TELESCOP', 'TIME-OBS',
    'UNITCORR', 'VAFACTOR', 'WCSAXES', 'WCSCDATE', 'ZOFFCORR', 'ZSIGCORR', 'WCSNAME', 'WCSTYPE',
    'HAPEXPNAME',
)
