"""Reference data the generator draws from: diagnoses, drugs, tests, procedures, allergens, variants.

Every code here passes `medspace.model.codes.code_valid` for its system (the tests check it).
Displays come in English and Chinese; CN hospitals write the Chinese ones.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Condition:
    """A diagnosis: ICD-10 (WHO), ICD-10-CM and SNOMED CT codes, and how likely it is per age group."""

    key: str
    icd10: str
    icd10cm: str
    snomed: str
    en: str
    zh: str
    chronic: bool
    weights: tuple[float, float, float]  # child (<18), adult (18-64), elderly (65+)
    drugs: tuple[str, ...] = ()
    p_treat: float = 0.0


@dataclass(frozen=True)
class Drug:
    """A drug: ATC and RxNorm codes, a usual dose and how it is taken."""

    key: str
    atc: str
    rxnorm: str
    en: str
    zh: str
    dose_cn: float
    dose_us: float
    unit: str  # UCUM
    route: str  # key of ROUTES
    frequency: str  # HL7 table 0335 code, key of FREQUENCIES
    chronic: bool


@dataclass(frozen=True)
class Test:
    """A LOINC-coded laboratory test or vital sign, in CN (SI) and US (conventional) units."""

    key: str
    loinc_cn: str
    loinc_us: str
    en: str
    zh: str
    category: str  # laboratory, vital-signs, survey
    unit_cn: str
    unit_us: str
    factor_us: float  # US value = CN value * factor
    ref_cn: tuple[float, float] | None
    ref_us: tuple[float, float] | None
    decimals_cn: int
    decimals_us: int


@dataclass(frozen=True)
class Coded:
    """A SNOMED CT coded item (procedure, allergen, reaction) with its age weights or category."""

    snomed: str
    en: str
    zh: str
    weights: tuple[float, ...] = (1.0, 1.0, 1.0)  # per age group, or one weight
    category: str = ""


@dataclass(frozen=True)
class Variant:
    """A genetic variant: gene, HGNC id, HGVS, dbSNP id, clinical significance, weights CN / US."""

    gene: str
    hgnc: str
    hgvs: str
    rsid: str
    significance: str
    w_cn: float
    w_us: float


CONDITIONS: tuple[Condition, ...] = (
    Condition("hypertension", "I10", "I10", "38341003", "Essential hypertension", "原发性高血压", True,
              (0.0, 0.30, 0.55), ("amlodipine", "lisinopril"), 0.8),
    Condition("hyperlipidaemia", "E78.5", "E78.5", "55822004", "Hyperlipidemia", "高脂血症", True,
              (0.0, 0.22, 0.35), ("atorvastatin",), 0.7),
    Condition("asthma", "J45.9", "J45.909", "195967001", "Asthma", "支气管哮喘", True,
              (0.25, 0.08, 0.05), ("salbutamol", "budesonide_formoterol"), 0.8),
    Condition("copd", "J44.9", "J44.9", "13645005", "Chronic obstructive pulmonary disease", "慢性阻塞性肺疾病",
              True, (0.0, 0.03, 0.14), ("tiotropium",), 0.7),
    Condition("chd", "I25.1", "I25.10", "53741008", "Coronary arteriosclerosis", "冠状动脉粥样硬化性心脏病", True,
              (0.0, 0.05, 0.25), ("aspirin", "atorvastatin"), 0.8),
    Condition("af", "I48.9", "I48.91", "49436004", "Atrial fibrillation", "心房颤动", True,
              (0.0, 0.01, 0.10), ("warfarin",), 0.7),
    Condition("heart_failure", "I50.9", "I50.9", "84114007", "Heart failure", "心力衰竭", True,
              (0.0, 0.01, 0.08), ("furosemide",), 0.8),
    Condition("ckd", "N18.9", "N18.9", "709044004", "Chronic kidney disease", "慢性肾脏病", True,
              (0.0, 0.03, 0.12)),
    Condition("hypothyroidism", "E03.9", "E03.9", "40930008", "Hypothyroidism", "甲状腺功能减退症", True,
              (0.01, 0.05, 0.07), ("levothyroxine",), 0.9),
    Condition("osteoarthritis", "M19.9", "M19.90", "396275006", "Osteoarthritis", "骨关节炎", True,
              (0.0, 0.06, 0.25), ("ibuprofen", "paracetamol"), 0.5),
    Condition("uri", "J06.9", "J06.9", "54150009", "Upper respiratory infection", "急性上呼吸道感染", False,
              (0.9, 0.25, 0.12), ("paracetamol",), 0.5),
    Condition("pneumonia", "J18.9", "J18.9", "233604007", "Pneumonia", "肺炎", False,
              (0.25, 0.05, 0.12), ("amoxicillin", "ceftriaxone"), 0.9),
    Condition("uti", "N39.0", "N39.0", "68566005", "Urinary tract infection", "尿路感染", False,
              (0.05, 0.08, 0.10), ("nitrofurantoin",), 0.85),
    Condition("gastroenteritis", "A09", "A09", "25374005", "Gastroenteritis", "胃肠炎", False,
              (0.35, 0.06, 0.04)),
    Condition("gastritis", "K29.7", "K29.70", "4556007", "Gastritis", "胃炎", False,
              (0.02, 0.10, 0.08), ("omeprazole",), 0.7),
    Condition("otitis_media", "H66.9", "H66.90", "65363002", "Otitis media", "中耳炎", False,
              (0.30, 0.02, 0.01), ("amoxicillin",), 0.7),
    Condition("stroke", "I63.9", "I63.9", "230690007", "Cerebral infarction", "脑梗死", True,
              (0.0, 0.01, 0.07), ("aspirin",), 0.8),
    Condition("obesity", "E66.9", "E66.9", "414916001", "Obesity", "肥胖症", True, (0.04, 0.08, 0.05)),
    Condition("low_back_pain", "M54.5", "M54.50", "279039007", "Low back pain", "腰痛", False,
              (0.0, 0.10, 0.08), ("ibuprofen",), 0.5),
    # Sexual health (an L1 category): rare, young adults.
    Condition("gonorrhoea", "A54.9", "A54.9", "15628003", "Gonorrhea", "淋病", False,
              (0.0, 0.004, 0.0), ("ceftriaxone",), 0.95),
)
COND_INDEX = {c.key: i for i, c in enumerate(CONDITIONS)}

# Type 2 diabetes, the study condition: (ICD-10 code, ICD-10-CM code, English, Chinese), weight.
T2D_SNOMED = "44054006"
T2D_SNOMED_DISPLAY = "Diabetes mellitus type 2"
T2D_CODES: tuple[tuple[str, str, str, str, float], ...] = (
    ("E11.9", "E11.9", "Type 2 diabetes mellitus without complications", "2型糖尿病，不伴有并发症", 0.6),
    ("E11.2", "E11.22", "Type 2 diabetes mellitus with kidney complications", "2型糖尿病伴有肾的并发症", 0.15),
    ("E11.4", "E11.40", "Type 2 diabetes mellitus with neurological complications", "2型糖尿病伴有神经的并发症",
     0.1),
    ("E11.6", "E11.65", "Type 2 diabetes mellitus with other specified complications", "2型糖尿病伴有其他特指的并发症",
     0.15),
)

# HIV (L1): B20 disease or Z21 asymptomatic infection status.
HIV_CONDITIONS: tuple[Condition, ...] = (
    Condition("hiv_disease", "B20", "B20", "86406008", "Human immunodeficiency virus [HIV] disease",
              "人类免疫缺陷病毒[HIV]病", True, (0.0, 0.6, 0.6)),
    Condition("hiv_status", "Z21", "Z21", "165816005",
              "Asymptomatic human immunodeficiency virus [HIV] infection status", "无症状人类免疫缺陷病毒[HIV]感染状态",
              True, (0.0, 0.4, 0.4)),
)
ART_DRUGS = ("art_bictegravir", "art_dolutegravir", "art_efavirenz")

# Psychiatric (L1): condition and the drugs that treat it.
PSYCH_CONDITIONS: tuple[Condition, ...] = (
    Condition("depression", "F32.9", "F32.9", "35489007", "Depressive episode, unspecified", "抑郁发作", True,
              (0.5, 0.5, 0.5), ("sertraline", "escitalopram"), 0.7),
    Condition("anxiety", "F41.9", "F41.9", "197480006", "Anxiety disorder, unspecified", "焦虑障碍", True,
              (0.3, 0.3, 0.3), ("escitalopram",), 0.6),
    Condition("schizophrenia", "F20.9", "F20.9", "58214004", "Schizophrenia, unspecified", "精神分裂症", True,
              (0.1, 0.1, 0.1), ("olanzapine", "risperidone"), 0.9),
    Condition("bipolar", "F31.9", "F31.9", "13746004", "Bipolar affective disorder, unspecified", "双相情感障碍",
              True, (0.1, 0.1, 0.1), ("lithium",), 0.8),
)

DRUGS: tuple[Drug, ...] = (
    Drug("metformin", "A10BA02", "860975", "metformin hydrochloride 500 MG Extended Release Oral Tablet",
         "二甲双胍缓释片", 500, 500, "mg", "PO", "BID", True),
    Drug("insulin_glargine", "A10AE04", "261551", "insulin glargine 100 UNT/ML Injectable Solution",
         "甘精胰岛素注射液", 10, 10, "[IU]", "SC", "QD", True),
    Drug("amlodipine", "C08CA01", "197361", "amlodipine 5 MG Oral Tablet", "苯磺酸氨氯地平片", 5, 5, "mg", "PO",
         "QD", True),
    Drug("lisinopril", "C09AA03", "314076", "lisinopril 10 MG Oral Tablet", "赖诺普利片", 10, 10, "mg", "PO", "QD",
         True),
    Drug("atorvastatin", "C10AA05", "617310", "atorvastatin 20 MG Oral Tablet", "阿托伐他汀钙片", 20, 20, "mg",
         "PO", "QHS", True),
    Drug("salbutamol", "R03AC02", "745679", "albuterol 0.09 MG/ACTUAT Metered Dose Inhaler", "沙丁胺醇气雾剂",
         100, 90, "ug", "IH", "PRN", True),
    Drug("budesonide_formoterol", "R03AK07", "1246306",
         "budesonide 0.16 MG/ACTUAT / formoterol fumarate 0.0045 MG/ACTUAT Inhalation Aerosol",
         "布地奈德福莫特罗吸入粉雾剂", 1, 2, "{puff}", "IH", "BID", True),
    Drug("tiotropium", "R03BB04", "1552002", "tiotropium 0.0025 MG/ACTUAT Inhalation Spray", "噻托溴铵吸入喷雾剂",
         5, 5, "ug", "IH", "QD", True),
    Drug("aspirin", "B01AC06", "243670", "aspirin 81 MG Oral Tablet", "阿司匹林肠溶片", 100, 81, "mg", "PO", "QD",
         True),
    Drug("warfarin", "B01AA03", "855332", "warfarin sodium 5 MG Oral Tablet", "华法林钠片", 2.5, 5, "mg", "PO",
         "QD", True),
    Drug("furosemide", "C03CA01", "310429", "furosemide 20 MG Oral Tablet", "呋塞米片", 20, 20, "mg", "PO", "QD",
         True),
    Drug("levothyroxine", "H03AA01", "966247", "levothyroxine sodium 0.05 MG Oral Tablet", "左甲状腺素钠片", 50,
         50, "ug", "PO", "QD", True),
    Drug("ibuprofen", "M01AE01", "310965", "ibuprofen 200 MG Oral Tablet", "布洛芬缓释胶囊", 300, 400, "mg", "PO",
         "TID", False),
    Drug("paracetamol", "N02BE01", "313782", "acetaminophen 325 MG Oral Tablet", "对乙酰氨基酚片", 500, 650, "mg",
         "PO", "Q6H", False),
    Drug("amoxicillin", "J01CA04", "308191", "amoxicillin 500 MG Oral Capsule", "阿莫西林胶囊", 500, 500, "mg",
         "PO", "TID", False),
    Drug("ceftriaxone", "J01DD04", "1665021", "ceftriaxone 1000 MG Injection", "注射用头孢曲松钠", 1000, 1000,
         "mg", "IV", "QD", False),
    Drug("nitrofurantoin", "J01XE01", "1648755", "nitrofurantoin 100 MG Oral Capsule", "呋喃妥因肠溶胶囊", 100, 100,
         "mg", "PO", "BID", False),
    Drug("omeprazole", "A02BC01", "402014", "omeprazole 20 MG Delayed Release Oral Capsule", "奥美拉唑肠溶胶囊", 20,
         20, "mg", "PO", "QD", False),
    Drug("sertraline", "N06AB06", "312940", "sertraline 50 MG Oral Tablet", "盐酸舍曲林片", 50, 50, "mg", "PO",
         "QD", True),
    Drug("escitalopram", "N06AB10", "351249", "escitalopram 10 MG Oral Tablet", "草酸艾司西酞普兰片", 10, 10, "mg",
         "PO", "QD", True),
    Drug("olanzapine", "N05AH03", "314155", "olanzapine 10 MG Oral Tablet", "奥氮平片", 10, 10, "mg", "PO", "QHS",
         True),
    Drug("risperidone", "N05AX08", "312830", "risperidone 2 MG Oral Tablet", "利培酮片", 2, 2, "mg", "PO", "BID",
         True),
    Drug("lithium", "N05AN01", "197889", "lithium carbonate 300 MG Oral Capsule", "碳酸锂缓释片", 300, 300, "mg",
         "PO", "BID", True),
    Drug("art_bictegravir", "J05AR20", "1999563",
         "bictegravir 50 MG / emtricitabine 200 MG / tenofovir alafenamide 25 MG Oral Tablet", "比克恩丙诺片", 1, 1,
         "{tbl}", "PO", "QD", True),
    Drug("art_dolutegravir", "J05AR13", "1546888",
         "abacavir 600 MG / dolutegravir 50 MG / lamivudine 300 MG Oral Tablet", "多替阿巴拉米片", 1, 1, "{tbl}",
         "PO", "QD", True),
    Drug("art_efavirenz", "J05AR11", "1721613",
         "efavirenz 600 MG / lamivudine 300 MG / tenofovir disoproxil fumarate 300 MG Oral Tablet",
         "依非韦伦拉米夫定替诺福韦片", 1, 1, "{tbl}", "PO", "QD", True),
)
DRUG_INDEX = {d.key: i for i, d in enumerate(DRUGS)}
# Everyday acute prescriptions not tied to a recorded diagnosis.
ACUTE_DRUGS = ("paracetamol", "ibuprofen", "omeprazole", "amoxicillin")
STUDY_DRUG = "metformin"

# Route: (HL7 table 0162 code, SNOMED CT code, English, Chinese).
ROUTES: dict[str, tuple[str, str, str, str]] = {
    "PO": ("PO", "26643006", "Oral route", "口服"),
    "IV": ("IV", "47625008", "Intravenous route", "静脉注射"),
    "SC": ("SC", "34206005", "Subcutaneous route", "皮下注射"),
    "IH": ("IH", "447694001", "Respiratory tract route", "吸入"),
}
# Frequency (HL7 table 0335): FHIR Timing.repeat (frequency, period, unit) or None for as needed.
FREQUENCIES: dict[str, tuple[int, float, str] | None] = {
    "QD": (1, 1, "d"), "BID": (2, 1, "d"), "TID": (3, 1, "d"), "QHS": (1, 1, "d"), "Q6H": (1, 6, "h"),
    "PRN": None,
}

TESTS: tuple[Test, ...] = (
    Test("hba1c", "4548-4", "4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "糖化血红蛋白", "laboratory",
         "%", "%", 1.0, (4.0, 6.0), (4.0, 5.6), 1, 1),
    Test("glucose", "14749-6", "2345-7", "Glucose in Serum or Plasma", "葡萄糖", "laboratory", "mmol/L", "mg/dL",
         18.016, (3.9, 6.1), (70, 99), 1, 0),
    Test("creatinine", "14682-9", "2160-0", "Creatinine in Serum or Plasma", "肌酐", "laboratory", "umol/L",
         "mg/dL", 1 / 88.4, (57, 111), (0.6, 1.3), 0, 2),
    Test("hemoglobin", "718-7", "718-7", "Hemoglobin [Mass/volume] in Blood", "血红蛋白", "laboratory", "g/L",
         "g/dL", 0.1, (115, 160), (12.0, 17.5), 0, 1),
    Test("wbc", "6690-2", "6690-2", "Leukocytes [#/volume] in Blood by Automated count", "白细胞计数",
         "laboratory", "10*9/L", "10*3/uL", 1.0, (3.5, 9.5), (4.5, 11.0), 1, 1),
    Test("cholesterol", "14647-2", "2093-3", "Cholesterol in Serum or Plasma", "总胆固醇", "laboratory",
         "mmol/L", "mg/dL", 38.67, (0.0, 5.2), (0, 200), 2, 0),
    Test("systolic", "8480-6", "8480-6", "Systolic blood pressure", "收缩压", "vital-signs", "mm[Hg]", "mm[Hg]",
         1.0, None, None, 0, 0),
    Test("diastolic", "8462-4", "8462-4", "Diastolic blood pressure", "舒张压", "vital-signs", "mm[Hg]", "mm[Hg]",
         1.0, None, None, 0, 0),
    Test("weight", "29463-7", "29463-7", "Body weight", "体重", "vital-signs", "kg", "kg", 1.0, None, None, 1, 1),
    Test("bmi", "39156-5", "39156-5", "Body mass index (BMI) [Ratio]", "体重指数", "vital-signs", "kg/m2", "kg/m2",
         1.0, None, None, 1, 1),
    Test("heart_rate", "8867-4", "8867-4", "Heart rate", "心率", "vital-signs", "/min", "/min", 1.0, None, None,
         0, 0),
    Test("hiv_ag_ab", "75622-1", "75622-1", "HIV 1 and 2 Ag+Ab [Presence] in Serum or Plasma by Immunoassay",
         "HIV抗原抗体联合检测", "laboratory", "", "", 1.0, None, None, 0, 0),
    Test("hiv_ab", "7917-8", "7917-8", "HIV 1 Ab [Presence] in Serum", "HIV-1抗体", "laboratory", "", "", 1.0,
         None, None, 0, 0),
    Test("hiv_viral_load", "25836-8", "25836-8", "HIV 1 RNA [#/volume] (viral load) in Serum or Plasma by NAA",
         "HIV-1 RNA载量", "laboratory", "{copies}/mL", "{copies}/mL", 1.0, None, None, 0, 0),
    Test("phq9", "44261-6", "44261-6", "Patient Health Questionnaire 9 item (PHQ-9) total score [Reported]",
         "PHQ-9抑郁量表总分", "survey", "{score}", "{score}", 1.0, (0, 4), (0, 4), 0, 0),
)
TEST_INDEX = {t.key: i for i, t in enumerate(TESTS)}
BP_PANEL = ("85354-9", "Blood pressure panel with all children optional", "血压")
VITALS_PANEL = ("85353-1", "Vital signs, weight, height, head circumference, oxygen saturation and BMI panel")
LAB_PANEL = ("24323-8", "Comprehensive metabolic 2000 panel - Serum or Plasma")
# Coded results (SNOMED CT qualifier values).
POSITIVE = ("10828004", "Positive", "阳性")
NEGATIVE = ("260385009", "Negative", "阴性")

PROCEDURES: tuple[Coded, ...] = (
    Coded("29303009", "Electrocardiographic procedure", "心电图检查", (0.10, 0.30, 0.50)),
    Coded("399208008", "Plain chest X-ray", "胸部X线检查", (0.30, 0.30, 0.40)),
    Coded("40701008", "Echocardiography", "超声心动图检查", (0.05, 0.10, 0.30)),
    Coded("73761001", "Colonoscopy", "结肠镜检查", (0.0, 0.10, 0.15)),
    Coded("80146002", "Appendectomy", "阑尾切除术", (0.06, 0.04, 0.01)),
    Coded("38102005", "Cholecystectomy", "胆囊切除术", (0.0, 0.04, 0.04)),
    Coded("36969009", "Placement of stent in coronary artery", "冠状动脉支架置入术", (0.0, 0.01, 0.05)),
    Coded("54885007", "Extraction of cataract", "白内障摘除术", (0.0, 0.01, 0.08)),
    Coded("52734007", "Total replacement of hip", "全髋关节置换术", (0.0, 0.005, 0.04)),
    Coded("609588000", "Total knee replacement", "全膝关节置换术", (0.0, 0.005, 0.04)),
    Coded("173422009", "Tonsillectomy", "扁桃体切除术", (0.08, 0.01, 0.0)),
    Coded("302497006", "Hemodialysis", "血液透析", (0.0, 0.01, 0.04)),
    Coded("303653007", "Computed tomography of head", "头颅CT检查", (0.05, 0.08, 0.15)),
    Coded("232717009", "Coronary artery bypass grafting", "冠状动脉旁路移植术", (0.0, 0.003, 0.02)),
)

ALLERGENS: tuple[Coded, ...] = (
    Coded("764146007", "Penicillin", "青霉素", (0.30,), "medication"),
    Coded("372687004", "Amoxicillin", "阿莫西林", (0.08,), "medication"),
    Coded("387406002", "Sulfamethoxazole", "磺胺甲噁唑", (0.08,), "medication"),
    Coded("387458008", "Aspirin", "阿司匹林", (0.06,), "medication"),
    Coded("387207008", "Ibuprofen", "布洛芬", (0.05,), "medication"),
    Coded("762952008", "Peanut", "花生", (0.10,), "food"),
    Coded("735029006", "Shellfish", "贝类", (0.06,), "food"),
    Coded("102263004", "Eggs", "鸡蛋", (0.06,), "food"),
    Coded("3718001", "Cow's milk", "牛奶", (0.05,), "food"),
    Coded("111088007", "Latex", "乳胶", (0.04,), "environment"),
    Coded("256259004", "Pollen", "花粉", (0.12,), "environment"),
    Coded("260147004", "House dust mite", "尘螨", (0.10,), "environment"),
    Coded("264287008", "Animal dander", "动物皮屑", (0.05,), "environment"),
)
REACTIONS: tuple[Coded, ...] = (
    Coded("271807003", "Eruption of skin", "皮疹", (0.35,)),
    Coded("126485001", "Urticaria", "荨麻疹", (0.30,)),
    Coded("39579001", "Anaphylaxis", "过敏性休克", (0.05,)),
    Coded("41291007", "Angioedema", "血管性水肿", (0.08,)),
    Coded("56018004", "Wheezing", "喘息", (0.12,)),
    Coded("422587007", "Nausea", "恶心", (0.10,)),
)

VARIANTS: tuple[Variant, ...] = (
    Variant("BRCA1", "HGNC:1100", "NM_007294.4:c.5266dup", "rs80357906", "pathogenic", 0.10, 0.12),
    Variant("BRCA1", "HGNC:1100", "NM_007294.4:c.68_69del", "rs80357914", "pathogenic", 0.04, 0.08),
    Variant("BRCA2", "HGNC:1101", "NM_000059.4:c.5946del", "rs80359550", "pathogenic", 0.08, 0.08),
    Variant("CFTR", "HGNC:1884", "NM_000492.4:c.1521_1523del", "rs113993960", "pathogenic", 0.01, 0.12),
    Variant("TP53", "HGNC:11998", "NM_000546.6:c.215C>G", "rs1042522", "benign", 0.15, 0.12),
    Variant("EGFR", "HGNC:3236", "NM_005228.5:c.2573T>G", "rs121434568", "pathogenic", 0.14, 0.05),
    Variant("KRAS", "HGNC:6407", "NM_004985.5:c.35G>A", "rs121913529", "pathogenic", 0.06, 0.08),
    Variant("APOE", "HGNC:613", "NM_000041.4:c.388T>C", "rs429358", "risk factor", 0.12, 0.15),
    Variant("MTHFR", "HGNC:7436", "NM_005957.5:c.665C>T", "rs1801133", "likely benign", 0.16, 0.10),
    Variant("CYP2C19", "HGNC:2621", "NM_000769.4:c.681G>A", "rs4244285", "drug response", 0.14, 0.10),
)
# LOINC answer codes for zygosity (LL381-5) and clinical significance (LL4034-6).
ZYGOSITY_ANSWERS = {"heterozygous": "LA6706-1", "homozygous": "LA6705-3"}
SIGNIFICANCE_ANSWERS = {
    "pathogenic": "LA6668-3", "likely pathogenic": "LA26332-9", "uncertain significance": "LA26333-7",
    "likely benign": "LA26334-5", "benign": "LA6675-8",
}

# Note types: (LOINC, English, Chinese).
NOTE_TYPES: dict[str, tuple[str, str, str]] = {
    "discharge": ("18842-5", "Discharge summary", "出院小结"),
    "progress": ("11506-3", "Progress note", "病程记录"),
    "consult": ("11488-4", "Consult note", "会诊记录"),
}

# Encounter: (FHIR v3 ActCode, HL7 v2 patient class, English, Chinese).
ENCOUNTER_CLASSES: tuple[tuple[str, str, str, str], ...] = (
    ("AMB", "O", "ambulatory", "门诊"),
    ("EMER", "E", "emergency", "急诊"),
    ("IMP", "I", "inpatient", "住院"),
)
DEPARTMENTS: tuple[tuple[str, str], ...] = (
    ("Internal Medicine", "内科"), ("Cardiology", "心内科"), ("Endocrinology", "内分泌科"),
    ("Respiratory Medicine", "呼吸内科"), ("General Surgery", "普外科"), ("Orthopedics", "骨科"),
    ("Neurology", "神经内科"), ("Gastroenterology", "消化内科"), ("Pediatrics", "儿科"), ("Emergency", "急诊科"),
)
PEDIATRICS, EMERGENCY = 8, 9
REASONS: tuple[tuple[str, str], ...] = (
    ("chest pain", "胸痛"), ("shortness of breath", "气促"), ("fever", "发热"), ("cough", "咳嗽"),
    ("abdominal pain", "腹痛"), ("headache", "头痛"), ("dizziness", "头晕"),
    ("follow-up of chronic disease", "慢病随访"),
    ("routine check-up", "健康体检"), ("joint pain", "关节痛"), ("fatigue", "乏力"), ("back pain", "腰痛"),
    ("rash", "皮疹"), ("vomiting", "呕吐"),
)
# Discharge disposition: (FHIR code, HL7 table 0112 code, English, Chinese), weight.
DISPOSITIONS: tuple[tuple[str, str, str, str, float], ...] = (
    ("home", "01", "Home", "回家", 0.86),
    ("other-hcf", "02", "Other healthcare facility", "转院", 0.05),
    ("snf", "03", "Skilled nursing facility", "转护理机构", 0.05),
    ("rehab", "62", "Rehabilitation", "转康复机构", 0.04),
)
