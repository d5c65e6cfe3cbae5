"""Word lists for the free-text scrubber (`medspace.deid.text`).

Written from public knowledge (US Census 2010 frequent surnames, US Social Security Administration
popular given names, the common Chinese surname rankings, USPS state abbreviations), deliberately not
taken from `medspace.synth`: the scrubber is measured on that generator's notes, so sharing its lists
would make the measurement circular.
"""

from __future__ import annotations


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Frequent US surnames (Census 2010, roughly the first 400, plus common Mc/O' forms).
US_SURNAMES: frozenset[str] = _words("""
Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez Gonzalez Wilson
Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris Sanchez Clark Ramirez Lewis Robinson
Walker Young Allen King Wright Scott Torres Nguyen Hill Flores Green Adams Nelson Baker Hall Rivera Campbell
Mitchell Carter Roberts Gomez Phillips Evans Turner Diaz Parker Cruz Edwards Collins Reyes Stewart Morris Morales
Murphy Cook Rogers Gutierrez Ortiz Morgan Cooper Peterson Bailey Reed Kelly Howard Ramos Kim Cox Ward Richardson
Watson Brooks Chavez Wood James Bennett Gray Mendoza Ruiz Hughes Price Alvarez Castillo Sanders Patel Myers Long
Ross Foster Jimenez Powell Jenkins Perry Russell Sullivan Bell Coleman Butler Henderson Barnes Gonzales Fisher
Vasquez Simmons Romero Jordan Patterson Alexander Hamilton Graham Reynolds Griffin Wallace Moreno West Cole Hayes
Bryant Herrera Gibson Ellis Tran Medina Aguilar Stevens Murray Ford Castro Marshall Owens Harrison Fernandez
McDonald Woods Washington Kennedy Wells Vargas Henry Chen Freeman Webb Tucker Guzman Burns Crawford Olson Simpson
Porter Hunter Gordon Mendez Silva Shaw Snyder Mason Dixon Munoz Hunt Hicks Holmes Palmer Wagner Black Robertson
Boyd Rose Stone Salazar Fox Warren Mills Meyer Rice Schmidt Garza Daniels Ferguson Nichols Stephens Soto Weaver
Ryan Gardner Payne Grant Dunn Kelley Spencer Hawkins Arnold Pierce Vazquez Hansen Peters Santos Hart Bradley
Knight Elliott Cunningham Duncan Armstrong Hudson Carroll Lane Riley Andrews Alvarado Ray Delgado Berry Perkins
Hoffman Johnston Matthews Pena Richards Contreras Willis Carpenter Lawrence Sandoval Guerrero George Chapman Rios
Estrada Ortega Watkins Greene Nunez Wheeler Valdez Harper Burke Larson Santiago Maldonado Morrison Franklin
Carlson Austin Dominguez Carr Lawson Jacobs O'Brien Obrien Lynch Singh Vega Bishop Montgomery Oliver Jensen Harvey
Williamson Gilbert Dean Sims Espinoza Howell Li Wong Reid Hanson Le McCoy Garrett Burton Fuller Wang Weber Welch
Rojas Lucas Marquez Fields Park Yang Little Banks Padilla Day Walsh Bowman Schultz Luna Fowler Mejia Davidson
Acosta Brewer May Holland Juarez Newman Pearson Curtis Cortez Douglas Schneider Joseph Barrett Navarro Figueroa
Keller Avila Wade Molina Stanley Hopkins Campos Barnett Bates Chambers Caldwell Beck Lambert Miranda Byrd Craig
Ayala Lowe Frazier Powers Neal Leonard Gregory Carrillo Sutton Fleming Rhodes Shelton Schwartz Norris Jennings
Watts Duran Walters Cohen McDaniel Moran Parks Steele Vaughn Becker Holt DeLeon Barker Terry Hale Leon Benson
Haynes Horton Miles Lyons Pham Graves Bush Thornton Wolfe Warner Cabrera McKinney Mann Zimmerman Dawson Lara
Fletcher Page McCarthy Love Robles Cervantes Solis Erickson Reeves Chang Klein Salinas Fuentes Baldwin Daniel
Simon Velasquez Hardy Higgins Aguirre Lin Cummings Chandler Sharp Barber Bowen Ochoa Dennis Robbins Liu Ramsey
Francis Griffith Paul Blair O'Connor Oconnor O'Neill Oneill Cardenas Pacheco Cross Calderon Quinn Moss Swanson
Chan Rivas Khan Rodgers Serrano Fitzgerald Rosales Stevenson Christensen Manning Gill Curry McLaughlin Harmon
McGee Gross Doyle Garner Newton Burgess Reese Walton Blake Trujillo Adkins Brady Goodman Roman Webster Goodwin
Fischer Huang Potter Delacruz Montoya Todd Wu Hines Mullins Castaneda Malone Cannon Tate Mack Sherman Hubbard
Hodges Zhang Guerra Wolf Valencia Saunders Franco Rowe Gallagher Farmer Hammond Hampton Townsend Ingram Wise
Gallegos Clarke Barton Schroeder Maxwell Waters Logan Camacho Strickland Norman Person Colon Parsons Frank Harrington
Glover Osborne Buchanan Casey Floyd Patton Ibarra Ball Tyler Suarez Bowers Orozco Salas Cobb Gibbs Andrade Bauer
Conner Moody Escobar McGuire Lloyd Mueller Hartman French Kramer McBride Pope Lindsey Velazquez Norton McCormick
Sparks Flynn Yates Hogan Marsh Macias Villanueva Zamora Pratt Stokes Owen Ballard Lang Brock Villarreal Charles
Drake Barrera Cain Patrick Pineda Burnett Mercado Santana Shepherd Bautista Ali Shaffer Lamb Trevino McKenzie Hess
Beil Olsen Cochran Morton Nash Wilkins Petersen Briggs Shah Roth Nicholson Holloway Lozano Rangel Flowers Hoover
Short Arias Mora Valenzuela Bryan Meyers Weiss Underwood Bass Greer Summers Houston Carson Morrow Clayton Whitaker
Decker Yoder Collier Zuniga Carey Wilcox Melendez Poole Roberson Larsen Conley Davenport Copeland Massey Lam Huff
Rocha Cameron Jefferson Hood Monroe Anthony Pittman Huynh Randall Singleton Kirk Combs Mathis Christian Skinner
Bradford Richard Galvan Wall Boone Kirby Wilkinson Bridges Bruce Atkinson Velez Meza Roy Vincent York Hodge
Villa Abbott Allison Tapia Gates Chase Sosa Sweeney Farrell Wyatt Dalton Horn Barron Phelps Yu Dickerson Heath
Foley Atkins Mathews Bonilla Acevedo Benitez Zavala Hensley Glenn Cisneros Harrell Shields Rubio Huffman Choi
Boyer Garrison Arroyo Bond Kane Hancock Callahan Dillon Cline Wiggins Grimes Arellano Melton O'Donnell Odonnell
Krueger Gentry Ho Cho Sun Zhao Zhou Xu Ma Hu Guo He Gao Lin Luo Zheng Liang Xie Song Tang Han Feng Deng Cao Peng
Zeng Xiao Tian Dong Yuan Pan Yu Jiang Cai Du Ye Cheng Su Wei Lu Ding Ren Shen Yao Cui Zhong Tan Fan Jin
Nakamura Tanaka Suzuki Sato Watanabe Yamamoto Kobayashi Ito Kato Yoshida Park Choi Jung Kang Cho Yoon Jang Lim
Kaur Kumar Sharma Gupta Shah Mehta Reddy Rao Iyer Das Chowdhury Hussain Ahmed Mohammed Rahman Islam
""")

# Popular US given names (SSA top names across recent decades), both sexes.
US_GIVEN: frozenset[str] = _words("""
James Robert John Michael David William Richard Joseph Thomas Christopher Charles Daniel Matthew Anthony Mark
Donald Steven Andrew Paul Joshua Kenneth Kevin Brian George Timothy Ronald Jason Edward Jeffrey Ryan Jacob Gary
Nicholas Eric Jonathan Stephen Larry Justin Scott Brandon Benjamin Samuel Gregory Alexander Patrick Frank Raymond
Jack Dennis Jerry Tyler Aaron Jose Adam Nathan Henry Zachary Douglas Peter Kyle Noah Ethan Jeremy Walter Christian
Keith Roger Terry Austin Sean Gerald Carl Harold Dylan Arthur Lawrence Jordan Jesse Bryan Billy Bruce Gabriel Joe
Logan Alan Juan Albert Willie Elijah Wayne Randy Vincent Mason Roy Ralph Bobby Russell Bradley Philip Eugene
Louis Johnny Bobby Liam Lucas Oliver Aiden Jackson Sebastian Carter Owen Wyatt Jayden Luke Grayson Levi Isaac
Lincoln Anthony Hudson Dominic Adrian Xavier Evan Connor Jaxon Cameron Caleb Ian Nolan Easton Colton Carson
Landon Hunter Jace Chase Cooper Micah Josiah Asher Eli Leo Ezra Miles Luis Carlos Miguel Diego Jesus Antonio
Manuel Pedro Alejandro Ricardo Fernando Jorge Francisco Javier Rafael Sergio Eduardo Roberto Andres Hector Mario
Oscar Ruben Enrique Victor Raul Alberto Ernesto Julio Cesar Marco Angel Martin Omar Ahmed Mohammed Ali Hassan
Wei Jun Hao Ming Lei Jian Tao Yong Chen Kim Minh Tuan Hung Raj Amit Rahul Arjun Vikram Sanjay Anil
Travis Shawn Todd Derek Marcus Cody Joel Curtis Shane Craig Darren Brett Trevor Clayton Dustin Jared Allen
Stanley Leonard Herbert Howard Fred Earl Clarence Ernest Harry Francis Jimmy Norman Leroy Melvin Glenn Lloyd
Mary Patricia Jennifer Linda Elizabeth Barbara Susan Jessica Sarah Karen Lisa Nancy Betty Sandra Margaret Ashley
Kimberly Emily Donna Michelle Carol Amanda Melissa Deborah Stephanie Dorothy Rebecca Sharon Laura Cynthia Amy
Kathleen Angela Shirley Brenda Emma Anna Pamela Nicole Samantha Katherine Christine Helen Debra Rachel Carolyn
Janet Maria Catherine Heather Diane Olivia Julie Joyce Victoria Ruth Virginia Lauren Kelly Christina Joan Evelyn
Judith Andrea Hannah Megan Cheryl Jacqueline Martha Madison Teresa Gloria Sara Janice Ann Kathryn Abigail Sophia
Frances Jean Alice Judy Isabella Julia Grace Amber Denise Danielle Marilyn Beverly Charlotte Natalie Theresa Diana
Brittany Doris Kayla Alexis Lori Marie Ava Mia Harper Evelyn Abigail Ella Avery Sofia Camila Aria Scarlett
Chloe Layla Riley Zoey Nora Lily Eleanor Hazel Violet Aurora Savannah Audrey Brooklyn Bella Claire Skylar Lucy
Paisley Everly Caroline Nova Genesis Emilia Kennedy Samantha Maya Willow Kinsley Naomi Aaliyah Elena Ariana Allison
Gabriella Alice Madelyn Cora Ruby Eva Serenity Autumn Adeline Hailey Gianna Valentina Isla Eliana Quinn Nevaeh
Ivy Sadie Piper Lydia Alexa Josephine Emery Julia Delilah Arianna Vivian Kaylee Sophie Brielle Madeline
Rosa Carmen Ana Guadalupe Juana Sofia Lucia Isabel Elena Gabriela Adriana Veronica Alejandra Mariana Daniela
Fernanda Valeria Ximena Paula Claudia Silvia Monica Beatriz Yolanda Leticia Raquel Alicia Irma Norma
Mei Li Ling Xia Yan Hui Fang Jing Lan Ying Hong Priya Anjali Neha Pooja Sunita Fatima Aisha Leila Yasmin
Tiffany Crystal Erica Erin Tracy Wendy Dawn Tammy Stacy Holly Monique Tanya Jenna Kristen Courtney Kelsey
Jasmine Vanessa Alyssa Kristin Sheila Peggy Lois Tina Phyllis Rita Anne Connie Wanda Tara Lillian Edna Irene
Ethel Mildred Florence Gladys Edith Louise Marjorie Thelma Josephine Bernice Jill Erin Kathy Robin Leslie Sue
Dolores Geraldine Bonnie Annie Paula Lorraine Sally Regina Beth Carla Yvonne Jo Kim Pat Chris Alex Sam Terry
""")

# Given names that are also ordinary capitalised words (sentence starts, months, virtues): on their own they
# start a name only when a known surname follows.
AMBIGUOUS_GIVEN: frozenset[str] = _words("""
Will Mark May June April August Grace Hope Faith Joy Pat Bill Art Guy Don Frank Rose Ivy Holly Dawn Summer Autumn
Chase Hunter Carter Cooper Mason Parker Jordan Austin Lincoln Hudson Miles Harper Riley Avery Quinn Kennedy Madison
Brooklyn Genesis Nova Serenity Willow Piper Sky Skylar Sue Jack Ray Dean Lane Reed Drew Chris Alex Sam Terry Kelly
Christian Angel Jesus Victoria Charity Patience Iris Ruby Violet Hazel Aurora Paisley Everly Emery Sage Royal
Carol Virginia Georgia Florence Kim Li Wei Jun Chen Hong Lan Fang Ming Jing Ying Hui Yan Lei Tao Hao
""")

# Capitalised words that end a name candidate: clinical, administrative and place words, months, weekdays.
NON_NAME_WORDS: frozenset[str] = _words("""
Hospital Clinic Center Centre Medical Medicine Health Healthcare Care University College School Institute
Department Dept Unit Ward Service Services Laboratory Lab Pharmacy Radiology Cardiology Neurology Oncology
Surgery Pediatrics Orthopedics Endocrinology Gastroenterology Dermatology Psychiatry Urology Nephrology
Disease Diseases Syndrome Disorder Disorders Infection Cancer Carcinoma Tumor Fracture Injury Failure Pain
Tablet Tablets Capsule Capsules Oral Injection Solution Spray Inhaler Dose Release Extended Delayed Patch
Street St Avenue Ave Road Rd Drive Dr Ln Boulevard Blvd Court Ct Way Place Pl Square Terrace Parkway Highway
County City State Lake River Mount Saint San Santa Los Las New North South East West Central Upper Lower
January February March April June July August September October November December
Jan Feb Mar Apr Jun Jul Aug Sep Sept Oct Nov Dec
Monday Tuesday Wednesday Thursday Friday Saturday Sunday Today Tomorrow Yesterday
Patient Patients Plan Assessment Impression History Exam Examination Diagnosis Diagnoses Discharge Admission
Admitted Discharged Follow Note Notes Summary Report Results Result Procedure Procedures Treatment Therapy
Emergency Department Progress Consult Consultation Attending Resident Nurse Doctor Physician Provider Team
Chief Complaint Review Systems Social Family Past Present Illness Allergies Medications Medication Vitals
Labs Imaging Signed Electronically Reviewed Seen Called Call Phone Email Address Portal Insurance Member
Mr Mrs Ms Miss Dr Prof MD DO RN NP PA PhD Jr Sr II III IV The And For With Without Not No Yes None Normal
Type Stage Grade Class Level Left Right Bilateral Acute Chronic Primary Secondary Essential Benign Malignant
Heart Lung Liver Kidney Brain Blood Bone Skin Eye Ear Nose Throat Chest Abdomen Back Neck Head Arm Leg
Alzheimer Alzheimers Parkinsons Crohn Crohns Hodgkin Hodgkins Addisons Cushings
Hashimoto Down Huntingtons Lyme Marfan Raynaud Sjogren Tourette
Apgar Glasgow Coma Scale Score Index Test Positive Negative Unit Units Care Intensive ICU ER ED OR
American English Spanish Chinese Hispanic Latino Asian African Native Caucasian
Protestant Catholic Jewish Muslim Buddhist Medicare Medicaid Tylenol Advil Motrin Aspirin Lipitor
""")

US_STATE_CODES: frozenset[str] = _words("""
AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM NY NC ND OH OK
OR PA RI SC SD TN TX UT VT VA WA WV WI WY PR GU VI AS MP
""")
US_STATE_NAMES: tuple[str, ...] = (
    "Alabama", "Alaska", "Arizona", "Arkansas", "California", "Colorado", "Connecticut", "Delaware", "Florida",
    "Georgia", "Hawaii", "Idaho", "Illinois", "Indiana", "Iowa", "Kansas", "Kentucky", "Louisiana", "Maine",
    "Maryland", "Massachusetts", "Michigan", "Minnesota", "Mississippi", "Missouri", "Montana", "Nebraska",
    "Nevada", "New Hampshire", "New Jersey", "New Mexico", "New York", "North Carolina", "North Dakota", "Ohio",
    "Oklahoma", "Oregon", "Pennsylvania", "Rhode Island", "South Carolina", "South Dakota", "Tennessee", "Texas",
    "Utah", "Vermont", "Virginia", "Washington", "West Virginia", "Wisconsin", "Wyoming", "District of Columbia",
    "Puerto Rico",
)
# USPS street suffixes (common ones, full and abbreviated).
STREET_SUFFIXES: tuple[str, ...] = (
    "Street", "St", "Avenue", "Ave", "Av", "Road", "Rd", "Drive", "Dr", "Lane", "Ln", "Boulevard", "Blvd", "Court",
    "Ct", "Way", "Place", "Pl", "Terrace", "Ter", "Parkway", "Pkwy", "Circle", "Cir", "Highway", "Hwy", "Square",
    "Sq", "Trail", "Trl", "Pike", "Alley", "Aly", "Row", "Loop", "Crescent", "Cres", "Path", "Plaza", "Plz",
    "Point", "Pt", "Run", "Walk", "Expressway", "Expy", "Freeway", "Fwy", "Turnpike", "Tpke", "Close", "Commons",
)

# Chinese surnames. COMMON are the frequent ones whose characters rarely start an ordinary word after a cue
# such as 患者; the AMBIGUOUS ones are frequent in running text too (于, 和, 高, 黄, 安...) and count only after a
# strong cue (姓名：) or before a title (先生, 女士, 医生...).
CN_SURNAMES_COMMON: str = (
    "王李张刘陈杨赵吴周徐孙马朱胡郭何林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟"
    "谭陆汪范金石廖贾夏韦付傅方邹孟熊秦邱江尹薛闫阎段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔汤温康施牛樊葛邢"
    "乔伍庞颜倪庄聂章鲁岳翟殷詹申欧耿焦俞左柳甘祝包舒阮柯纪梅童凌毕季裴霍涂苗谷盛翁冉骆蓝游辛靳柴蒙鲍喻祁蒲"
    "房滕饶牟艾尤穆农卓缪褚娄窦戚岑景宫卜晏瞿桂佟臧闵苟邬卞姬仇栾隋刁巫寇桑郎甄丛仲虞敖巩佘池麻苑迟邝鞠匡"
    "荆冀郁胥栗楚鄢谌奚粟冼蔺阚帅屠朴禹漆卿狄晋扈晁芮阙戈邸雍辜裘亓邰赫杭逯茹嵇湛宓"
)
CN_SURNAMES_AMBIGUOUS: str = (
    "高黄白文于和时成全应国平明向常安齐关尚单曲路管华解司古吉简车项连麦党费冷席卫米柏宗师商沙荣查官封谈乐原燕"
    "劳皮满闻位区海花权强门云容敬来都普伏鹿薄羊母修况那宿鲜印战危玉银公利居干但信展由富智幸井丰支计索宣相初"
    "兰邱易东南"
)
CN_COMPOUND_SURNAMES: tuple[str, ...] = (
    "欧阳", "司马", "上官", "诸葛", "东方", "皇甫", "尉迟", "公孙", "慕容", "长孙", "宇文", "司徒", "夏侯", "令狐",
    "轩辕", "端木", "独孤", "南宫", "西门", "呼延", "万俟", "闻人", "澹台", "申屠", "太史", "钟离", "宗政", "濮阳",
)
# Characters that end a Chinese given name when they follow a surname: function words, clinical words,
# titles and punctuation-like characters that are (almost) never part of a personal name.
ZH_NAME_STOP: str = (
    "因于在的今昨自诉主既无有出入来行经以为是等及和与已未曾现男女年岁日时先士医院科室电话号码身份证病案性别龄"
    "姓名诊断治疗术后前中内外查体血压心肺肝肾痛热咳服药复随访就住址属签字了而但并且或仍再又也都不没请将被把对"
    "从至到去回之其该此本每各某些述称示见觉感患者病人儿妻夫父母亲联系式邮箱网地门急诊记录结嘱处意见主任护师期间次个位例"
)
# Chinese provinces and province-level cities (for address starts).
CN_PROVINCES: tuple[str, ...] = (
    "北京", "天津", "上海", "重庆", "河北", "山西", "辽宁", "吉林", "黑龙江", "江苏", "浙江", "安徽", "福建", "江西",
    "山东", "河南", "湖北", "湖南", "广东", "海南", "四川", "贵州", "云南", "陕西", "甘肃", "青海", "台湾", "内蒙古",
    "广西", "西藏", "宁夏", "新疆", "香港", "澳门",
)
